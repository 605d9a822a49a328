-- GSM8K as the paper formats it: prompt `Q: {question}\nA:`; the training target is the
-- reference rationale with the calculator annotations <<...>> removed, ending
-- ` So the answer is {N}.`; evaluation generates until `Q:`, `</s>` or `<|im_end|>` (256 new
-- tokens at most), takes the strict `So the answer is N.` match and compares it with GSM8K's
-- exact_match rules. Needs the items table registered as gsm8k.items (crossdiff sql --data
-- ../shared/data).
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "generate_until", "stop": ["Q:", "</s>", "<|im_end|>"], "max_new_tokens": 256,
--    "filter": "gsm8k_strict", "exact_match": "gsm8k"}
CREATE OR REPLACE VIEW gsm8k_task AS
SELECT
    item_id,
    'Q: ' || question || chr(10) || 'A:' AS prompt,
    ' ' || regexp_replace(
        regexp_replace(split_part(answer, '####', 1), '<<[^>]*>>', '', 'g'),
        '\s+', ' ', 'g'
    ) || 'So the answer is ' || final_answer || '.' AS response,
    final_answer AS answer,
    n_solution_steps
FROM gsm8k.items;

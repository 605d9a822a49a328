-- BIG-Bench Hard as the paper formats it: `Q: {question}\nA:`; the whole generated answer must
-- match exactly. Needs bbh.items (crossdiff sql --data ../shared/data).
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "generate_until", "stop": ["\n\n", "Q:", "<|im_end|>"], "max_new_tokens": 64,
--    "filter": "none", "regexes_to_ignore": ["^\\s+", "\\s+$"]}
CREATE OR REPLACE VIEW bbh_task AS
SELECT
    item_id,
    task,
    'Q: ' || question || chr(10) || 'A:' AS prompt,
    ' ' || answer AS response,
    answer
FROM bbh.items;

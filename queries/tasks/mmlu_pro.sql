-- MMLU-Pro as the paper formats it: `Question: {question}\nA) {option}\nB) ...\nAnswer:` and the
-- answer letter; evaluation generates and takes the first letter A-J of the output. Needs
-- mmlu_pro.items (crossdiff sql --data ../shared/data).
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "generate_until", "stop": ["\n\n", "Question:"], "max_new_tokens": 16,
--    "filter": "first_letter"}
-- "first_letter" is the paper's task file's filter exactly: regex ([A-J]), first match, so an
-- output "Answer: C" is read as A (the A of "Answer") and graded wrong unless the answer is A.
-- "filter": "standalone_letter" reads the first A-J standing alone as a word instead
-- ("Answer: C" -> C, "(C)" -> C); it is not what the paper measured.
-- or, scored by log-likelihood over the letters (choices column):
--   {"output_type": "multiple_choice"}
CREATE OR REPLACE VIEW mmlu_pro_task AS
WITH options AS (
    SELECT item_id, question, answer, choices,
           unnest(range(1, CAST(array_length(choices) AS BIGINT) + 1)) AS k
    FROM mmlu_pro.items
)
SELECT
    item_id,
    'Question: ' || question || chr(10)
        || string_agg(chr(64 + k) || ') ' || choices[k], chr(10) ORDER BY k)
        || chr(10) || 'Answer:' AS prompt,
    ' ' || answer AS response,
    answer,
    array_agg(chr(64 + k) ORDER BY k) AS choices
FROM options
GROUP BY item_id, question, answer, choices;

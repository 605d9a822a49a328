-- ARC (the Open LLM Leaderboard's ARC-Challenge items in oll_v1.items) as the paper formats it:
-- `Question: {question}\nA) {option}\nB) ...\nAnswer:` and the answer letter; scored as multiple
-- choice over the letters by log-likelihood (acc; acc_norm is in correct_norm). Needs
-- oll_v1.items (crossdiff sql --data ../shared/data).
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "multiple_choice"}
CREATE OR REPLACE VIEW arc_task AS
WITH options AS (
    SELECT item_id, question, answer, choices,
           unnest(range(1, CAST(array_length(choices) AS BIGINT) + 1)) AS k
    FROM oll_v1.items
    WHERE benchmark = 'arc'
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

-- MuSR as the paper formats it (its lm-eval task file, as lm-eval's leaderboard_musr tasks):
-- prompt `{narrative}\n\n{question}\n\n1 - {choice 1}\n2 - {choice 2}\n...\n\nAnswer:`, scored as
-- multiple choice over the choice texts by log-likelihood, graded by acc_norm (the
-- log-likelihood per character of the choice). Needs the items registered as musr.items in
-- the dataset's public shape: narrative, question, choices (the dataset's text, a Python list
-- literal such as ['Cook: Alice', "Mia's bag"]), answer_index (0-based) and an item_id (the
-- dataset has none: e.g. '<split>-' || row number, the split being murder_mysteries,
-- object_placements or team_allocation).
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "multiple_choice", "metric": "acc_norm"}
--
-- The choices text is split on its quotes: a choice holding a quote and a comma followed by
-- a quote (', ') would be cut in two; MuSR's choices (names, places, assignments) have none.
CREATE OR REPLACE VIEW musr_task AS
WITH parsed AS (
    SELECT item_id, narrative, question, answer_index,
           string_to_array(
               regexp_replace(
                   regexp_replace(trim(choices), '^\[\s*[''"]|[''"]\s*\]$', '', 'g'),
                   '[''"]\s*,\s*[''"]', chr(31), 'g'),
               chr(31)) AS choices
    FROM musr.items
),
options AS (
    SELECT item_id, narrative, question, answer_index, choices,
           unnest(range(1, CAST(array_length(choices) AS BIGINT) + 1)) AS k
    FROM parsed
)
SELECT
    item_id,
    narrative || chr(10) || chr(10) || question || chr(10) || chr(10)
        || string_agg(CAST(k AS VARCHAR) || ' - ' || choices[k], chr(10) ORDER BY k)
        || chr(10) || chr(10) || 'Answer:' AS prompt,
    ' ' || choices[answer_index + 1] AS response,
    CAST(answer_index AS BIGINT) AS answer,
    choices
FROM options
GROUP BY item_id, narrative, question, answer_index, choices;

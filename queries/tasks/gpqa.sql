-- GPQA as the paper formats it (its lm-eval task file, as lm-eval's leaderboard_gpqa tasks):
-- prompt `What is the correct answer to this question:{Question}\nChoices:\n(A) {choice1}\n
-- (B) {choice2}\n(C) {choice3}\n(D) {choice4}\nAnswer: ` (ending in a space, as the task file
-- has it), scored as multiple choice over `(A)` .. `(D)` by log-likelihood, graded by
-- acc_norm. Needs the items registered as gpqa.items in the task's processed shape: item_id,
-- Question, choice1 .. choice4 (the four answers in the order shown) and answer (`(A)` ..
-- `(D)`). The leaderboard's sample logs record exactly that document (read_items(...,
-- 'leaderboard_v2') gives question, choices and target from it); the raw dataset (Question,
-- Correct Answer, Incorrect Answer 1-3) needs the shuffle below first.
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "multiple_choice", "metric": "acc_norm"}
--
-- The task file shuffles each item's answers with Python's global random state, which SQL
-- cannot repeat. A reproducible alternative over the raw dataset (registered as gpqa.raw, the
-- task's text clean-up applied) puts the correct answer at position (row mod 4):
--
--   CREATE TABLE gpqa.items AS
--   WITH cleaned AS (
--       SELECT row_number() OVER () - 1 AS n, "Question",
--              make_array(clean("Incorrect Answer 1"), clean("Incorrect Answer 2"),
--                         clean("Incorrect Answer 3")) AS wrong,
--              clean("Correct Answer") AS right
--       FROM gpqa.raw)
--   SELECT CAST(n AS VARCHAR) AS item_id, "Question",
--          CASE WHEN n % 4 = 0 THEN right ELSE wrong[1] END AS choice1,
--          CASE WHEN n % 4 = 1 THEN right WHEN n % 4 = 0 THEN wrong[1] ELSE wrong[2] END AS choice2,
--          CASE WHEN n % 4 = 2 THEN right WHEN n % 4 = 3 THEN wrong[3] ELSE wrong[2] END AS choice3,
--          CASE WHEN n % 4 = 3 THEN right ELSE wrong[3] END AS choice4,
--          '(' || chr(65 + CAST(n % 4 AS INT)) || ')' AS answer
--   FROM cleaned;
--
-- where clean(x) stands for the task's preprocess, written inline:
--   replace(regexp_replace(replace(trim(x), ' [title]', '. '), '\[.*?\]', '', 'g'), '  ', ' ')
CREATE OR REPLACE VIEW gpqa_task AS
SELECT
    item_id,
    'What is the correct answer to this question:' || "Question" || chr(10)
        || 'Choices:' || chr(10)
        || '(A) ' || choice1 || chr(10)
        || '(B) ' || choice2 || chr(10)
        || '(C) ' || choice3 || chr(10)
        || '(D) ' || choice4 || chr(10)
        || 'Answer: ' AS prompt,
    ' ' || answer AS response,
    answer,
    make_array('(A)', '(B)', '(C)', '(D)') AS choices
FROM gpqa.items;

-- MATH as the paper formats it (its lm-eval task file, as lm-eval's minerva_math and
-- leaderboard_math tasks): prompt `Problem:\n{problem}\n\nSolution:`; the training target is
-- the reference solution, whose final answer sits in \boxed{}; evaluation generates until
-- `Problem:` and grades the last \boxed{} of the output against the solution's by
-- mathematical equivalence (`exact_match: "math"`, the same rules as math_equal). Needs the
-- items registered as math.items with MATH's columns problem, level, type, solution and an
-- item_id (the public dataset has no id: number the rows of the split, e.g. with
-- row_number() OVER ()).
--
-- evaluate / generalization_matrix options for this view:
--   {"output_type": "generate_until", "stop": ["Problem:"], "max_new_tokens": 1024,
--    "exact_match": "math"}
CREATE OR REPLACE VIEW math_task AS
SELECT
    item_id,
    'Problem:' || chr(10) || problem || chr(10) || chr(10) || 'Solution:' AS prompt,
    ' ' || solution AS response,
    solution AS answer,
    math_answer(solution) AS final_answer,
    CAST(regexp_replace(level, '[^0-9]', '', 'g') AS BIGINT) AS level,
    type AS subject
FROM math.items;

-- Calibrated under one protocol, evaluated under another.
--
-- The paper fits each item's IRT difficulty to the Open LLM Leaderboard's responses, which
-- the leaderboard collected few-shot (BBH 3-shot, MATH 4-shot, ARC 25-shot, ...) and mostly
-- by log-likelihood over the options (acc_norm), and it evaluates its fine-tunes 0-shot by
-- generation, without saying so. This query puts the two protocols side by side, per
-- benchmark, before anyone reads a generalization matrix across them.
--
-- Run from the project root (it reads the v2 details fixture; point step 1 at your own
-- details folder):
--   crossdiff sql -f queries/protocols.sql

-- 1. The calibration responses with their provenance: the metric that decided `correct`, the
--    number of few-shot examples, the hash of each prompt.
CREATE TABLE calibration AS
SELECT * FROM read_responses('tests/fixtures/leaderboard_v2', 'leaderboard_v2',
                             '{"group": ["bbh", "math", "musr"], "provenance": true}');

-- 2. The evaluation protocol: the evaluate options each benchmark's matrix runs with (those
--    queries/tasks/*.sql give). The views' prompts carry no few-shot examples.
CREATE TABLE evaluation (benchmark VARCHAR, options VARCHAR) AS VALUES
    ('bbh', '{"output_type": "generate_until", "stop": ["\n\n", "Q:"], "max_new_tokens": 64}'),
    ('math', '{"output_type": "generate_until", "stop": ["Problem:"], "max_new_tokens": 1024, "exact_match": "math"}'),
    ('musr', '{"output_type": "multiple_choice", "metric": "acc_norm"}'),
    ('gpqa_diamond', '{"output_type": "multiple_choice", "metric": "acc_norm"}');

-- 3. Side by side. A metric scored by log-likelihood over options (acc, acc_norm, mc1) is a
--    multiple-choice protocol; exact_match and IFEval's accuracies are generation.
WITH calibrated AS (
    SELECT benchmark, metric, n_shot,
           count(DISTINCT model_id) AS models,
           count(DISTINCT prompt_hash) AS prompts
    FROM calibration
    GROUP BY benchmark, metric, n_shot
),
evaluated AS (
    SELECT benchmark,
           coalesce(regexp_match(options, '"output_type":\s*"([a-z_]+)"')[1],
                    'multiple_choice') AS output_type,
           regexp_match(options, '"metric":\s*"([a-z_]+)"')[1] AS metric
    FROM evaluation
),
compared AS (
    SELECT c.benchmark, c.models, c.prompts,
           c.metric AS calibration_metric,
           c.n_shot AS calibration_shots,
           CASE WHEN c.metric IN ('acc', 'acc_norm', 'mc1', 'mc2') THEN 'multiple_choice'
                ELSE 'generate_until' END AS calibration_output,
           e.output_type AS evaluation_output,
           CASE WHEN e.output_type = 'multiple_choice' THEN coalesce(e.metric, 'acc')
                ELSE 'exact_match' END AS evaluation_metric,
           0 AS evaluation_shots
    FROM calibrated c JOIN evaluated e USING (benchmark)
)
SELECT benchmark, models, calibration_shots, calibration_output, calibration_metric,
       evaluation_shots, evaluation_output, evaluation_metric,
       CASE WHEN calibration_shots = evaluation_shots
                 AND calibration_output = evaluation_output
                 AND calibration_metric = evaluation_metric THEN 'same protocol'
            ELSE concat_ws(', ',
                CASE WHEN calibration_shots IS DISTINCT FROM evaluation_shots
                     THEN CAST(calibration_shots AS VARCHAR) || '-shot vs 0-shot' END,
                CASE WHEN calibration_output <> evaluation_output
                     THEN calibration_output || ' vs ' || evaluation_output END,
                CASE WHEN calibration_metric <> evaluation_metric
                     THEN calibration_metric || ' vs ' || evaluation_metric END)
       END AS differs
FROM compared
ORDER BY benchmark;

-- crossdiff demo: the paper's difficulty-generalization study, end to end, on a CPU.
--
-- Tables (registered from data/demo by `crossdiff demo`, or `crossdiff sql --data data/demo`):
--   items(benchmark, item_id, question, answer, n_digits, n_carries, subtraction)
--       a synthetic benchmark: additions and subtractions of 1- to 4-digit numbers
--       ('Q: 4821 + 377 =' -> '5198'); n_digits and n_carries are the human-style proxies
--   responses(model_id, benchmark, item_id, correct)
--       the leaderboard: tiny language models of several sizes, each trained by crossdiff
--       on the benchmark's questions and saved at many training budgets; every snapshot
--       answered every item (greedy decoding, exact match)
-- Model: models/base in the data folder, a tiny Qwen2-architecture model trained on other
-- problems of the same family (it never saw these items' answers except one-digit facts).
-- `crossdiff zoo --out data/demo` regenerates all of it from scratch.
--
-- Paths: model folders are relative to the setting crossdiff.data_dir, runs are kept in
-- crossdiff.run_store, and outputs are written to the working directory. `crossdiff demo
-- --out DIR` runs the script in DIR with crossdiff.data_dir set to the data folder and
-- crossdiff.run_store to DIR/runs. By hand, in the output folder:
--   crossdiff sql --data DATA -c "SET crossdiff.data_dir = 'DATA'" \
--                 -c "SET crossdiff.run_store = 'runs'" -f demo.sql

-- 1. The leaderboard.
SELECT count(DISTINCT model_id) AS models,
       count(DISTINCT item_id)  AS items,
       count(*)                 AS responses,
       round(avg(CAST(correct AS DOUBLE)), 3) AS mean_accuracy
FROM responses;

SELECT split_part(model_id, '-step', 1) AS model_size,
       count(*)               AS snapshots,
       round(min(accuracy), 3) AS least_trained,
       round(max(accuracy), 3) AS most_trained
FROM (SELECT model_id, avg(CAST(correct AS DOUBLE)) AS accuracy
      FROM responses GROUP BY model_id)
GROUP BY model_size
ORDER BY model_size;

-- 2. Item difficulty from the leaderboard (1PL IRT, joint MAP) and the paper's ten
--    equal-size bins (bin 0 is the easiest).
CREATE TABLE item_difficulty AS
SELECT benchmark, item_id, difficulty, difficulty_se, p_correct, flag,
       difficulty_bin(difficulty, 10, item_id) OVER () AS bin
FROM irt_fit('responses', '1pl', 'jml');

SELECT d.bin,
       count(*) AS items,
       round(min(d.difficulty), 2) AS easiest,
       round(max(d.difficulty), 2) AS hardest,
       round(avg(i.n_digits), 2)  AS mean_digits,
       round(avg(i.n_carries), 2) AS mean_carries
FROM item_difficulty d JOIN items i USING (item_id)
GROUP BY d.bin
ORDER BY d.bin;

-- How firm are the bins? The share of each bin's items that stay in it in at least 90% of
-- 1,000 redraws of every difficulty from its standard error.
SELECT bin,
       count(*) AS items,
       round(avg(CASE WHEN stability >= 0.9 THEN 1.0 ELSE 0.0 END), 2) AS stable_share
FROM (SELECT bin,
             difficulty_bin_stability(difficulty, difficulty_se, 10) OVER (ORDER BY item_id) AS stability
      FROM item_difficulty)
GROUP BY bin
ORDER BY bin;

-- 3. Does the models' difficulty agree with the human proxies?
SELECT round(spearman_corr(d.difficulty, i.n_digits), 3)       AS spearman_digits,
       round(spearman_corr(d.difficulty, i.n_carries), 3)      AS spearman_carries,
       round(spearman_corr(d.difficulty, length(i.answer)), 3) AS spearman_answer_length,
       round(kendall_tau(d.difficulty, i.n_digits), 3)         AS kendall_digits
FROM item_difficulty d JOIN items i USING (item_id);

-- 4. The task: what the model is asked, the reference answer, the training target
--    (the answer as the base model writes it) and the bin.
CREATE VIEW task AS
SELECT i.item_id, i.question AS prompt, i.answer, ' ' || i.answer AS response, d.bin
FROM items i JOIN item_difficulty d USING (item_id);

-- 5. The generalization matrix: the base model zero-shot, one fine-tune per bin, each
--    fine-tune evaluated on every bin. As in the paper's code every item is evaluated,
--    the training bin's included; set "held_out": 0.5 to evaluate on unseen items only.
--    Runs are cached in the run store: a second demo reuses them.
--    The study's options, once, as the session's defaults; each call adds its own.
SET crossdiff.matrix_options = '{
  "n_bins": 10,
  "train": {"chat_template": false, "epochs": 20, "learning_rate": 0.003, "batch_size": 8,
            "gradient_accumulation": 1, "warmup_ratio": 0.05, "weight_decay": 0.0,
            "max_grad_norm": 1.0, "max_seq_len": 64, "seed": 42},
  "evaluate": {"output_type": "generate_until", "chat_template": false, "stop": ["\n"],
               "max_new_tokens": 8, "filter": "^\\s*(\\S+)", "batch_size": 64}
}';

CREATE TABLE matrix AS
SELECT * FROM generalization_matrix('task', 'models/base', '{"held_out": 0}');

-- Zero-shot accuracy per bin: the base model finds easy items easy.
SELECT eval_bin, any_value(n_items) AS items, round(any_value(zero_shot_accuracy), 3) AS zero_shot
FROM matrix GROUP BY eval_bin ORDER BY eval_bin;

-- The matrix (delta = accuracy after fine-tuning on train_bin - zero-shot accuracy), with
-- its heatmap (* marks a cell whose interval excludes zero, ** a significant one).
SELECT train_bin, eval_bin, round(accuracy, 3) AS accuracy, round(delta, 3) AS delta,
       round(delta_ci_low, 3) AS delta_ci_low, round(delta_ci_high, 3) AS delta_ci_high,
       significant
FROM matrix ORDER BY train_bin, eval_bin;

-- Which cells are more than noise? Each has a paired bootstrap interval of its delta over the
-- bin's 32 items and an exact McNemar test; `significant` survives Holm's correction across
-- the 100 cells at the 5% level.
SELECT count(*) AS cells,
       count(*) FILTER (WHERE significant) AS significant,
       count(*) FILTER (WHERE delta_ci_low > 0 OR delta_ci_high < 0) AS interval_excludes_zero
FROM matrix;
SELECT train_bin, eval_bin, round(delta, 3) AS delta,
       round(delta_ci_low, 3) AS ci_low, round(delta_ci_high, 3) AS ci_high,
       round(p_value, 5) AS p_value
FROM matrix WHERE significant ORDER BY train_bin, eval_bin;

-- 6. The method's question with intervals: does the gain shrink as the train/eval gap grows?
--    gap = eval_bin - train_bin (> 0: trained on easier items than evaluated). gap_profile
--    reads the same runs (nothing is retrained) and resamples items and cells for each
--    interval; the last row is the slope of delta per bin of |gap|.
CREATE TABLE profile AS
SELECT * FROM gap_profile('task', 'models/base', '{"held_out": 0}');

SELECT measure, gap, direction, n_cells, round(estimate, 3) AS estimate,
       round(ci_low, 3) AS ci_low, round(ci_high, 3) AS ci_high
FROM profile ORDER BY measure, gap;

-- 7. The same study evaluated on unseen items only: half of each bin (a seeded split) is
--    held out of training. A diagonal gain that vanishes here was the fine-tune learning
--    its own training items, not the bin's skill.
CREATE TABLE matrix_held_out AS
SELECT * FROM generalization_matrix('task', 'models/base', '{"held_out": 0.5}');

SELECT abs(a.train_bin - a.eval_bin) AS bin_gap,
       round(avg(a.delta), 3) AS all_items,
       round(avg(h.delta), 3) AS unseen_items
FROM matrix a JOIN matrix_held_out h USING (train_bin, eval_bin)
GROUP BY bin_gap
ORDER BY bin_gap;

CREATE TABLE profile_held_out AS
SELECT * FROM gap_profile('task', 'models/base', '{"held_out": 0.5}');

SELECT measure, gap, n_cells, round(estimate, 3) AS estimate,
       round(ci_low, 3) AS ci_low, round(ci_high, 3) AS ci_high
FROM profile_held_out ORDER BY measure, gap;

-- 8. Exports for pandas, Polars or DuckDB, then the pictures.
COPY (SELECT d.*, i.question, i.answer, i.n_digits, i.n_carries
      FROM item_difficulty d JOIN items i USING (item_id) ORDER BY bin, item_id)
TO 'item_difficulty.parquet' STORED AS PARQUET;

COPY (SELECT * FROM matrix ORDER BY train_bin, eval_bin)
TO 'matrix.parquet' STORED AS PARQUET;

COPY (SELECT * FROM matrix_held_out ORDER BY train_bin, eval_bin)
TO 'matrix_held_out.parquet' STORED AS PARQUET;

COPY (SELECT 'all items' AS evaluated_on, * FROM profile
      UNION ALL SELECT 'held-out items', * FROM profile_held_out)
TO 'gap_profile.parquet' STORED AS PARQUET;

SELECT * FROM plot_matrix('matrix', 'matrix',
                          'Arithmetic, tiny model: accuracy change vs zero-shot');

SELECT * FROM plot_matrix('matrix_held_out', 'matrix_held_out',
                          'Arithmetic, tiny model, unseen items: accuracy change vs zero-shot');

SELECT * FROM plot_gap_profile('profile', 'gap_profile',
                               'Arithmetic, tiny model: accuracy change by train/eval gap');

SELECT * FROM plot_gap_profile('profile_held_out', 'gap_profile_held_out',
                               'Arithmetic, tiny model, unseen items: change by train/eval gap');

SELECT * FROM plot_difficulty('item_difficulty', '.');

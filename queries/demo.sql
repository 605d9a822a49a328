-- crossdiff demo: item difficulty from a leaderboard sample, ten difficulty bins, and how
-- difficulty relates to the generating truth and to human-style proxies.
--
-- Tables (registered from data/sample by `crossdiff demo`, or `crossdiff sql --data data/sample`):
--   responses(model_id, benchmark, item_id, correct)      Rasch responses of 400 generated models
--   items(benchmark, item_id, question, n_steps, true_difficulty)
--
-- Difficulty is the 1PL IRT difficulty b (joint MAP, irt_fit); higher is harder.

-- 1. The data.
SELECT benchmark,
       count(DISTINCT model_id) AS models,
       count(DISTINCT item_id)  AS items,
       count(*)                 AS responses,
       round(avg(CAST(correct AS DOUBLE)), 3) AS mean_accuracy
FROM responses
GROUP BY benchmark
ORDER BY benchmark;

-- 2. Item difficulty: one 1PL fit per benchmark, materialized once.
CREATE TABLE item_difficulty AS
SELECT benchmark, item_id, difficulty, difficulty_se, p_correct, n_responses, infit, outfit
FROM irt_fit('responses', '1pl', 'jml');

-- 3. The paper's quantiles and ten equal-size bins per benchmark (bin 0 is the easiest).
CREATE VIEW binned AS
SELECT d.*,
       difficulty_quantile(difficulty, item_id) OVER (PARTITION BY benchmark) AS quantile,
       difficulty_bin(difficulty, 10, item_id)  OVER (PARTITION BY benchmark) AS bin
FROM item_difficulty d;

SELECT benchmark, bin,
       count(*) AS items,
       round(min(difficulty), 3) AS easiest,
       round(max(difficulty), 3) AS hardest
FROM binned
GROUP BY benchmark, bin
ORDER BY benchmark, bin;

-- 4. Rank agreement with the generating difficulty and with human-style proxies.
SELECT b.benchmark,
       round(spearman_corr(b.difficulty, i.true_difficulty), 3) AS spearman_truth,
       round(spearman_corr(b.difficulty, i.n_steps), 3)         AS spearman_steps,
       round(kendall_tau(b.difficulty, i.n_steps), 3)           AS kendall_steps,
       round(spearman_corr(b.difficulty,
             array_length(string_to_array(i.question, ' '))), 3) AS spearman_words
FROM binned b
JOIN items i USING (benchmark, item_id)
GROUP BY b.benchmark
ORDER BY b.benchmark;

-- 5. Exports for pandas, Polars or DuckDB.
COPY (SELECT * FROM binned ORDER BY benchmark, bin, item_id)
TO 'out/demo/item_difficulty.parquet' STORED AS PARQUET;

COPY (SELECT benchmark, bin, count(*) AS items, avg(difficulty) AS mean_difficulty
      FROM binned GROUP BY benchmark, bin ORDER BY benchmark, bin)
TO 'out/demo/bin_summary.parquet' STORED AS PARQUET;

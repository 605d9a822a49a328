-- GSM8K items of the Open LLM Leaderboard (../shared/data/oll_v1) in ten equal difficulty
-- bins by 1PL IRT difficulty, and the rank correlation of difficulty with the number of
-- solution steps.
--
-- Run from the project root:  crossdiff sql -f queries/gsm8k_bins.sql

CREATE EXTERNAL TABLE responses STORED AS PARQUET LOCATION '../shared/data/oll_v1/responses.parquet';
CREATE EXTERNAL TABLE items STORED AS PARQUET LOCATION '../shared/data/oll_v1/items.parquet';

CREATE VIEW gsm8k_binned AS
SELECT d.item_id, d.difficulty, i.n_solution_steps,
       difficulty_bin(d.difficulty, 10, d.item_id) OVER () AS bin
FROM (SELECT item_id, difficulty
      FROM irt_fit('SELECT * FROM responses WHERE benchmark = ''gsm8k''', '1pl', 'jml')) d
JOIN items i ON i.benchmark = 'gsm8k' AND i.item_id = d.item_id;

SELECT bin, count(*) AS items,
       round(avg(difficulty), 3) AS mean_difficulty,
       round(avg(n_solution_steps), 2) AS mean_steps
FROM gsm8k_binned GROUP BY bin ORDER BY bin;

SELECT count(*) AS items,
       round(spearman_corr(difficulty, n_solution_steps), 4) AS spearman_steps,
       round(spearman_corr(bin, n_solution_steps), 4)        AS spearman_bin_steps
FROM gsm8k_binned;

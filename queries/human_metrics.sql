-- Rank correlation between item difficulty and human difficulty proxies, on the real
-- leaderboard data in ../shared/data (the paper's §"human metrics" analysis).
--
-- Run from the project root:
--   crossdiff sql --data ../shared/data -f queries/human_metrics.sql
--
-- Difficulty is the 1PL IRT difficulty (joint MAP) fitted to each source's models.
-- Expect weak correlations: the paper's point is that human proxies say little about
-- what is hard for models. (bbh has 2 models only: its difficulties are rough.)

CREATE TABLE difficulty AS
SELECT 'oll_v1' AS source, benchmark, item_id, difficulty, n_responses AS n_models
FROM irt_fit('oll_v1.responses', '1pl', 'jml')
UNION ALL
SELECT 'mmlu_pro', benchmark, item_id, difficulty, n_responses FROM irt_fit('mmlu_pro.responses', '1pl', 'jml')
UNION ALL
SELECT 'chembench', benchmark, item_id, difficulty, n_responses FROM irt_fit('chembench.responses', '1pl', 'jml')
UNION ALL
SELECT 'theoremqa', benchmark, item_id, difficulty, n_responses FROM irt_fit('theoremqa.responses', '1pl', 'jml')
UNION ALL
SELECT 'bbh', benchmark, item_id, difficulty, n_responses FROM irt_fit('bbh.responses', '1pl', 'jml');

CREATE VIEW item_words AS
SELECT source, benchmark, item_id,
       array_length(string_to_array(regexp_replace(trim(question), '\s+', ' ', 'g'), ' ')) AS words
FROM (
  SELECT 'oll_v1' AS source, benchmark, item_id, question FROM oll_v1.items
  UNION ALL SELECT 'mmlu_pro', benchmark, item_id, question FROM mmlu_pro.items
  UNION ALL SELECT 'chembench', benchmark, item_id, question FROM chembench.items
  UNION ALL SELECT 'theoremqa', benchmark, item_id, question FROM theoremqa.items
  UNION ALL SELECT 'bbh', benchmark, item_id, question FROM bbh.items
);

-- 1. Question length in words, for every benchmark with text.
SELECT d.source, d.benchmark,
       count(*)        AS items,
       max(d.n_models) AS models,
       round(spearman_corr(d.difficulty, w.words), 3) AS spearman_words,
       round(kendall_tau(d.difficulty, w.words), 3)   AS kendall_words
FROM difficulty d
JOIN item_words w USING (source, benchmark, item_id)
GROUP BY d.source, d.benchmark
ORDER BY d.source, d.benchmark;

-- 2. GSM8K: number of solution steps in the reference rationale.
SELECT 'oll_v1' AS source, d.benchmark,
       count(*) AS items,
       round(spearman_corr(d.difficulty, i.n_solution_steps), 3) AS spearman_steps,
       round(kendall_tau(d.difficulty, i.n_solution_steps), 3)   AS kendall_steps
FROM difficulty d
JOIN oll_v1.items i ON d.source = 'oll_v1' AND d.benchmark = i.benchmark AND d.item_id = i.item_id
WHERE d.benchmark = 'gsm8k'
GROUP BY d.benchmark;

-- 3. ChemBench: the authors' difficulty label (basic = 0, advanced = 1).
SELECT 'chembench' AS source,
       count(i.difficulty) AS labelled_items,
       sum(CASE WHEN i.difficulty = 'difficulty-advanced' THEN 1 ELSE 0 END) AS advanced_items,
       round(spearman_corr(d.difficulty, CASE i.difficulty WHEN 'difficulty-basic' THEN 0 WHEN 'difficulty-advanced' THEN 1 END), 3) AS spearman_label,
       round(kendall_tau(d.difficulty, CASE i.difficulty WHEN 'difficulty-basic' THEN 0 WHEN 'difficulty-advanced' THEN 1 END), 3)   AS kendall_label
FROM difficulty d
JOIN chembench.items i ON d.source = 'chembench' AND d.item_id = i.item_id;

-- 4. MMLU-Pro: where the question comes from (original MMLU = 0, added sources = 1),
--    and mean difficulty per source family.
SELECT 'mmlu_pro' AS source,
       count(*) AS items,
       round(spearman_corr(d.difficulty, CASE WHEN i.src LIKE 'ori_mmlu%' THEN 0 ELSE 1 END), 3) AS spearman_added_source,
       round(kendall_tau(d.difficulty, CASE WHEN i.src LIKE 'ori_mmlu%' THEN 0 ELSE 1 END), 3)   AS kendall_added_source
FROM difficulty d
JOIN mmlu_pro.items i ON d.source = 'mmlu_pro' AND d.item_id = i.item_id;

SELECT split_part(i.src, '-', 1) AS src_family,
       count(*) AS items,
       round(avg(d.difficulty), 3) AS mean_difficulty
FROM difficulty d
JOIN mmlu_pro.items i ON d.source = 'mmlu_pro' AND d.item_id = i.item_id
GROUP BY split_part(i.src, '-', 1)
ORDER BY mean_difficulty;

-- The paper's study for one benchmark (GSM8K here), end to end in SQL:
-- responses of many LLMs -> IRT difficulty per item -> ten equal-size bins -> one fine-tune of
-- the base model per bin, each evaluated on every bin -> the generalization matrix -> Parquet.
--
--   crossdiff sql --data ../shared/data -f queries/tasks/gsm8k.sql -f queries/paper_pipeline.sql
--
-- The base model is the folder models/base. Point it at any local Hugging Face model folder:
--   ln -s /path/to/Qwen2.5-1.5B-Instruct models/base         (a GPU machine:
--   cargo build --release --features cuda; the paper's settings are the fine_tune defaults)
-- or make a tiny one to try the pipeline on a CPU (it will not learn GSM8K, but every step runs):
--   crossdiff tiny-model --out models/base
-- Every fine-tune and evaluation is cached in the run store: re-running this script redoes
-- nothing, and an interrupted run resumes where it stopped.

-- 1. Difficulty: py-irt's 1PL model with hierarchical priors, fitted by variational inference.
CREATE OR REPLACE VIEW gsm8k_difficulty AS
SELECT item_id, difficulty
FROM irt_fit('gsm8k.responses', '1pl', 'vi', '{"priors": "hierarchical"}');

-- 2. The task rows with their difficulty; generalization_matrix cuts them into n_bins bins.
CREATE OR REPLACE VIEW gsm8k_study AS
SELECT t.item_id, t.prompt, t.response, t.answer, d.difficulty
FROM gsm8k_task t JOIN gsm8k_difficulty d ON t.item_id = d.item_id;

-- 3. The matrix: evaluation on all items as in the paper (set "held_out": 0.2 to evaluate
--    each bin on items its fine-tune never saw).
COPY (
    SELECT *
    FROM generalization_matrix('gsm8k_study', 'models/base', '{
        "n_bins": 10,
        "train": {"epochs": 5, "learning_rate": 5e-6},
        "evaluate": {"output_type": "generate_until", "stop": ["Q:", "</s>", "<|im_end|>"],
                     "max_new_tokens": 256, "filter": "gsm8k_strict", "exact_match": "gsm8k"}
    }')
) TO 'out/paper/gsm8k_generalization_matrix.parquet' STORED AS PARQUET;

CREATE EXTERNAL TABLE gsm8k_matrix STORED AS PARQUET
LOCATION 'out/paper/gsm8k_generalization_matrix.parquet';
SELECT train_bin, eval_bin, round(delta, 3) AS delta FROM gsm8k_matrix ORDER BY train_bin, eval_bin;

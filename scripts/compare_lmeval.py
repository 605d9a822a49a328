"""crossdiff `evaluate` against lm-eval-harness, item by item, on the same model folder.

Writes a multiple-choice and a generate_until task (YAML + jsonl) that exercise lm-eval's
conventions (a trailing-space context, an empty context, non-ASCII choices, choices of 1 to 8
characters, stop strings, regex filters taking the first and the last match, exact_match with
ignore_case / ignore_punctuation / regexes_to_ignore), runs `lm_eval --model hf --log_samples`
with and without `--apply_chat_template`, runs crossdiff `evaluate` on the same items with the
same settings, ingests lm-eval's samples back with `crossdiff ingest`, and prints per-metric
item agreement.

    python scripts/compare_lmeval.py --crossdiff BIN --model DIR --work DIR
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

# lm-eval's regexes are Python's; the same text goes to crossdiff.
FILTERS = [
    # (lm-eval filter name, crossdiff filter, take, lm-eval filter steps)
    ("none", "none", "first", [{"function": "take_first"}]),
    ("first-number", r"(\d+)", "first",
     [{"function": "regex", "regex_pattern": r"(\d+)", "group_select": 0}, {"function": "take_first"}]),
    ("last-of-two-groups", r"(-?\d{2,})|(\d)", "last",
     [{"function": "regex", "regex_pattern": r"(-?\d{2,})|(\d)", "group_select": -1},
      {"function": "take_first"}]),
    ("all-empty-groups", r"(x*)(y*)\d", "first",
     [{"function": "regex", "regex_pattern": r"(x*)(y*)\d", "group_select": 0}, {"function": "take_first"}]),
]
STOP = ["\n", "Q:"]
MAX_NEW_TOKENS = 8
IGNORE = [",", r"^\s+"]


def mc_items():
    items = []
    lengths = ["1", "13", "130", "1300", "13000", "130000", "1300000", "13000000"]
    for k in range(16):
        a, b = k % 7 + 1, (3 * k) % 9 + 1
        right = str(a + b)
        wrong = [str(a + b + 1), str(a * b + 10), str(abs(a - b))]
        question = f"Q: {a} + {b} ="
        if k % 4 == 1:
            question += " "  # trailing space: moves to the continuation
        choices = [right] + [w for w in wrong if w != right]
        if k % 4 == 2:
            choices = choices[:2] + ["fünf", "五"]  # non-ASCII choices
        if k % 4 == 3:
            choices = [right] + lengths[: 1 + k % 8]  # choices of 1 to 8 characters
        gold = k % len(choices)
        choices[0], choices[gold] = choices[gold], choices[0]
        items.append({"id": f"mc-{k:02d}", "question": question, "choices": choices, "gold": gold})
    # An empty context: lm-eval conditions on the prefix token (BOS, else EOS).
    items.append({"id": "mc-empty", "question": "", "choices": ["5", "six", "Q: 1"], "gold": 0})
    return items


def gen_items():
    items = []
    for k in range(20):
        a, b = k % 9 + 1, (5 * k) % 11 + 2
        question = f"Q: {a} + {b} ="
        if k % 3 == 1:
            question += " "
        answer = str(a + b) if k % 5 else f"{a + b:,}."
        items.append({"id": f"gen-{k:02d}", "question": question, "answer": answer})
    return items


def write_tasks(work, mc, gen):
    tasks = os.path.join(work, "tasks")
    os.makedirs(tasks, exist_ok=True)
    for name, rows in [("cd_mc", mc), ("cd_gen", gen)]:
        with open(os.path.join(tasks, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    common = (
        "dataset_path: json\n"
        "dataset_kwargs:\n  data_files:\n    test: {path}\n"
        "test_split: test\n"
        "doc_to_text: question\n"
    )
    with open(os.path.join(tasks, "cd_mc.yaml"), "w") as f:
        f.write("task: cd_mc\noutput_type: multiple_choice\n")
        f.write(common.format(path=os.path.join(tasks, "cd_mc.jsonl")))
        f.write("doc_to_choice: choices\ndoc_to_target: gold\n")
        f.write("metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    filters = [{"name": n, "filter": steps} for n, _, _, steps in FILTERS]
    gen_yaml = {
        "task": "cd_gen",
        "output_type": "generate_until",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": os.path.join(tasks, "cd_gen.jsonl")}},
        "test_split": "test",
        "doc_to_text": "question",
        "doc_to_target": "answer",
        "generation_kwargs": {"until": STOP, "do_sample": False, "max_gen_toks": MAX_NEW_TOKENS},
        "filter_list": filters,
        "metric_list": [{
            "metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
            "ignore_case": True, "ignore_punctuation": True, "regexes_to_ignore": IGNORE,
        }],
    }
    # JSON is YAML.
    with open(os.path.join(tasks, "cd_gen.yaml"), "w") as f:
        json.dump(gen_yaml, f, indent=1)
    return tasks


def run_lmeval(model, tasks, out, chat, threads):
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "lm_eval"),
        "--model", "hf",
        "--model_args", f"pretrained={model},dtype=float32",
        "--tasks", "cd_mc,cd_gen",
        "--include_path", tasks,
        "--device", "cpu",
        "--batch_size", "1",
        "--log_samples",
        "--output_path", out,
    ]
    if chat:
        cmd.append("--apply_chat_template")
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def lmeval_samples(out, task):
    paths = sorted(glob.glob(os.path.join(out, "**", f"samples_{task}_*.jsonl"), recursive=True))
    if not paths:
        sys.exit(f"no lm-eval samples for {task} under {out}")
    with open(paths[-1], encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_crossdiff(binary, model, work, name, table, parquet, options):
    out = os.path.join(work, f"crossdiff_{name}.parquet")
    sql = [
        f"CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION '{parquet}'",
        f"COPY (SELECT * FROM evaluate('{model}', '{table}', '{json.dumps(options)}')) TO '{out}' STORED AS PARQUET",
    ]
    args = [binary, "sql"]
    for s in sql:
        args += ["-c", s]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return {r["item_id"]: r for r in pq.read_table(out).to_pylist()}


def agreement(rows, label):
    same = sum(1 for r in rows if r)
    share = 100.0 * same / max(len(rows), 1)
    return f"{label:<44} {same:>3}/{len(rows):<3} {share:6.1f}%"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--crossdiff", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    work = os.path.abspath(a.work)
    model = os.path.abspath(a.model)
    mc, gen = mc_items(), gen_items()
    tasks = write_tasks(work, mc, gen)
    mc_parquet = os.path.join(work, "mc_items.parquet")
    gen_parquet = os.path.join(work, "gen_items.parquet")
    pq.write_table(pa.table({
        "item_id": [r["id"] for r in mc], "prompt": [r["question"] for r in mc],
        "choices": [r["choices"] for r in mc], "answer": [str(r["gold"]) for r in mc],
    }), mc_parquet)
    pq.write_table(pa.table({
        "item_id": [r["id"] for r in gen], "prompt": [r["question"] for r in gen],
        "answer": [r["answer"] for r in gen],
    }), gen_parquet)
    store = os.path.join(work, "runs")
    lines = []
    all_agree = True
    for chat in (False, True):
        mode = "chat template" if chat else "plain"
        out = os.path.join(work, "lmeval_chat" if chat else "lmeval_plain")
        run_lmeval(model, tasks, out, chat, a.threads)
        # Multiple choice.
        ours = run_crossdiff(a.crossdiff, model, work, f"mc_{chat}", "mc", mc_parquet, {
            "output_type": "multiple_choice", "chat_template": chat, "run_store": store})
        theirs = {s["doc"]["id"]: s for s in lmeval_samples(out, "cd_mc")}
        acc, acc_norm, ll, worst = [], [], [], 0.0
        for item in mc:
            o, t = ours[item["id"]], theirs[item["id"]]
            acc.append(bool(o["correct"]) == bool(t["acc"]))
            acc_norm.append(bool(o["correct_norm"]) == bool(t["acc_norm"]))
            lls = [float(r[0]) for r in t["filtered_resps"]]  # logged as text
            diff = max(abs(x - y) for x, y in zip(o["log_likelihoods"], lls))
            worst = max(worst, diff)
            ll.append(diff <= 1e-4 and len(lls) == len(o["log_likelihoods"]))
        lines += [
            agreement(acc, f"[{mode}] multiple choice acc"),
            agreement(acc_norm, f"[{mode}] multiple choice acc_norm"),
            agreement(ll, f"[{mode}] log-likelihoods within 1e-4") + f"  (largest gap {worst:.2e})",
        ]
        all_agree &= all(acc) and all(acc_norm) and all(ll)
        # Generation, one crossdiff run per lm-eval filter.
        samples = lmeval_samples(out, "cd_gen")
        for name, ours_filter, take, _ in FILTERS:
            ours = run_crossdiff(a.crossdiff, model, work, f"gen_{chat}_{name}", "gen", gen_parquet, {
                "output_type": "generate_until", "chat_template": chat, "stop": STOP,
                "max_new_tokens": MAX_NEW_TOKENS, "filter": ours_filter, "take": take,
                "ignore_case": True, "ignore_punctuation": True, "regexes_to_ignore": IGNORE,
                "run_store": store})
            theirs = {s["doc"]["id"]: s for s in samples if s["filter"] == name}
            answer, em, raw = [], [], []
            for item in gen:
                o, t = ours[item["id"]], theirs[item["id"]]
                extracted = t["filtered_resps"][0] if isinstance(t["filtered_resps"], list) else t["filtered_resps"]
                answer.append(o["prediction"] == extracted)
                em.append(bool(o["correct"]) == bool(t["exact_match"]))
                raw.append(o["output"] == t["resps"][0][0])
                if o["prediction"] != extracted:
                    print(f"  differs [{mode}/{name}] {item['id']}: crossdiff {o['prediction']!r} "
                          f"lm-eval {extracted!r}")
            lines += [
                agreement(raw, f"[{mode}] generation output (cut at stops)") if name == "none" else None,
                agreement(answer, f"[{mode}] extracted answer, filter {name}"),
                agreement(em, f"[{mode}] exact_match, filter {name}"),
            ]
            all_agree &= all(answer) and all(em) and all(raw)
        # lm-eval's samples read back: acc for multiple choice, the first filter for generation.
        ingested = os.path.join(work, f"ingested_{chat}.parquet")
        done = subprocess.run([a.crossdiff, "ingest", "--format", "lm_eval", out, "--out", ingested],
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            lines.append(f"[{mode}] lm-eval samples ingested back: FAILED: {done.stderr.strip()[-300:]}")
            all_agree = False
            continue
        back = {(r["benchmark"], r["item_id"]): r["correct"] for r in pq.read_table(ingested).to_pylist()}
        first = FILTERS[0][0]
        want = {("cd_mc", str(s["doc_id"])): bool(s["acc"]) for s in lmeval_samples(out, "cd_mc")}
        want.update({("cd_gen", str(s["doc_id"])): bool(s["exact_match"])
                     for s in samples if s["filter"] == first})
        read_back = [back.get(k) == v for k, v in want.items()] + [len(back) == len(want)]
        lines.append(agreement(read_back, f"[{mode}] lm-eval samples ingested back"))
        all_agree &= all(read_back)
    print("\ncrossdiff evaluate vs lm-eval-harness, item by item")
    for line in lines:
        if line:
            print(line)
    print("all items agree" if all_agree else "SOME ITEMS DIFFER (listed above)")
    sys.exit(0 if all_agree else 1)


if __name__ == "__main__":
    main()

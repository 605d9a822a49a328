"""crossdiff's math_answer / math_equal against lm-eval-harness's Minerva-math grading.

For every text of tests/fixtures/math_answers.tsv (predictions and targets), lm-eval's own
functions (lm_eval/tasks/minerva_math/utils.py: last_boxed_only_string, remove_boxed,
get_unnormalized_answer, normalize_final_answer) give the normalised final answer, and
crossdiff's math_answer() gives its own, through `crossdiff sql`. Where both normalised
pairs are equal as text, lm-eval's grade is known without sympy (which needs antlr4, not
installed); those grades are compared with math_equal's too.

lm-eval's task module imports math_verify and antlr4 at the top; the script puts stand-ins
for them in sys.modules, as nothing it calls uses them.
"""

import argparse
import csv
import importlib.metadata
import json
import subprocess
import sys
import types


def lm_eval_utils():
    for name in ["antlr4", "math_verify"]:
        stub = types.ModuleType(name)
        stub.parse = stub.verify = lambda *a, **k: None
        stub.LatexExtractionConfig = object
        sys.modules.setdefault(name, stub)
    real_version = importlib.metadata.version
    importlib.metadata.version = lambda name: "4.11" if name.startswith("antlr4") else real_version(name)
    from lm_eval.tasks.minerva_math import utils

    return utils


def lm_eval_answer(utils, text):
    """lm-eval's final answer of a text: its last \\boxed{} (as the MATH tasks that box
    answers read it), else the Minerva sentence's answer; None where it finds neither."""
    invalid = getattr(utils, "INVALID_ANSWER", "[invalidanswer]")
    boxed = utils.last_boxed_only_string(text)
    answer = None
    if boxed not in (None, invalid):
        try:
            answer = utils.remove_boxed(boxed)
        except AssertionError:  # \\fbox{}: lm-eval's remove_boxed takes only \\boxed
            answer = None
    if answer is None:
        answer = utils.get_unnormalized_answer(text)
    if answer in (None, invalid):
        return None
    return utils.normalize_final_answer(answer)


def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crossdiff", required=True)
    ap.add_argument("--pairs", default="tests/fixtures/math_answers.tsv")
    args = ap.parse_args()
    rows = []
    with open(args.pairs) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#") or not line.strip():
                continue
            prediction, target, equal = line.split("\t")
            rows.append((prediction, target, equal == "true"))
    texts = sorted({t for p, g, _ in rows for t in (p, g)})
    values = ", ".join(f"({i}, {sql_quote(t)})" for i, t in enumerate(texts))
    pairs = ", ".join(
        f"({i}, {sql_quote(p)}, {sql_quote(g)})" for i, (p, g, _) in enumerate(rows)
    )
    sql = [
        f"SELECT id, math_answer(t) AS answer FROM (VALUES {values}) AS v(id, t) ORDER BY id",
        f"SELECT id, math_equal(p, g) AS equal FROM (VALUES {pairs}) AS v(id, p, g) ORDER BY id",
    ]
    out = {}
    for k, q in enumerate(sql):
        r = subprocess.run(
            [args.crossdiff, "sql", "--format", "json", "-c", q],
            check=True, capture_output=True, text=True,
        )
        out[k] = json.loads(r.stdout)
    ours = {row["id"]: row["answer"] for row in out[0]}
    graded = {row["id"]: row["equal"] for row in out[1]}

    utils = lm_eval_utils()
    agree = differ = invalid = 0
    for i, t in enumerate(texts):
        theirs = lm_eval_answer(utils, t)
        if theirs is None:
            # No box and no sentence: lm-eval normalises such a text as it is (a target's
            # doc["answer"]); math_answer falls back to the whole text too.
            invalid += 1
            theirs = utils.normalize_final_answer(t)
        if theirs == ours[i]:
            agree += 1
        else:
            differ += 1
            print(f"DIFFERENT normalised answer for {t!r}: lm-eval {theirs!r}, crossdiff {ours[i]!r}")
    print(f"normalised answers: {agree}/{agree + differ} agree "
          f"({invalid} of them plain texts, normalised whole: no \\boxed and no Minerva sentence)")

    same = mismatched = unknown = 0
    for i, (p, g, want) in enumerate(rows):
        a, b = lm_eval_answer(utils, p), lm_eval_answer(utils, g if "\\boxed" in g else
                                                       f"Final Answer: The final answer is {g}. I hope it is correct.")
        if a is None or b is None or a.strip() != b.strip():
            unknown += 1  # lm-eval would ask sympy (or grade an unextractable text 0)
            continue
        if graded[i]:
            same += 1
        else:
            mismatched += 1
            print(f"DIFFERENT grade for {p!r} vs {g!r}: lm-eval equal as text, crossdiff false")
    print(f"grades where lm-eval's normalised texts match: {same}/{same + mismatched} agree "
          f"({unknown} pairs need sympy or have no extractable answer on lm-eval's side)")
    table_wrong = sum(1 for i, (_, _, want) in enumerate(rows) if graded[i] != want)
    print(f"math_equal against the table's expected grades: {len(rows) - table_wrong}/{len(rows)}")
    sys.exit(1 if differ or mismatched or table_wrong else 0)


if __name__ == "__main__":
    main()

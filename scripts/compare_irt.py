"""Fits responses with the reference IRT tools, for scripts/compare_irt.sh.

    python compare_irt.py pyirt  RESPONSES.parquet OUT.parquet --priors vague|hierarchical [--seed S]
    python compare_irt.py girth  RESPONSES.parquet OUT.parquet
    python compare_irt.py girth2pl RESPONSES.parquet OUT.parquet
    python compare_irt.py numpy2pl RESPONSES.parquet OUT.parquet
    python compare_irt.py report TRUTH_OR_REFERENCE.parquet FIT.parquet [FIT.parquet ...]
    python compare_irt.py report2pl REFERENCE.parquet FIT.parquet [FIT.parquet ...]

RESPONSES has columns model_id, item_id, correct and optionally benchmark; every benchmark is
fitted on its own. OUT gets benchmark, item_id, difficulty, seconds (the fit alone, this
benchmark). `report` prints, per fit file and benchmark, Spearman and ten-bin agreement of
its difficulties with the first file's column `difficulty` (or `true_difficulty`).
`girth2pl` fits girth's twopl_mml (OUT adds discrimination and p_correct); `numpy2pl` fits the
same model by a textbook Bock-Aitkin EM written here in numpy (no priors, no bounds, a fixed
121-point grid on [-6, 6]): a third opinion where girth and crossdiff disagree; `report2pl` prints,
per benchmark, the rank agreement of difficulties and discriminations on the items whose share
correct lies in [0.02, 0.98], the fits' largest discrimination and how many items discriminate
hardly at all (a < 0.1).
"""

import argparse
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def by_benchmark(path):
    table = pq.read_table(path)
    names = table.column_names
    if "benchmark" not in names:
        table = table.append_column("benchmark", pa.array([""] * table.num_rows))
    # DataFusion writes string views, which pyarrow's compute kernels do not all take.
    for ix, field in enumerate(table.schema):
        if pa.types.is_string_view(field.type):
            table = table.set_column(ix, field.name, table.column(ix).cast(pa.string()))
    bench = table.column("benchmark").to_pylist()
    for b in sorted(set(bench)):
        part = table.filter(pc.equal(table.column("benchmark"), b))
        models = part.column("model_id").cast(pa.string()).to_pylist()
        items = part.column("item_id").cast(pa.string()).to_pylist()
        correct = np.asarray(part.column("correct").cast(pa.int8()).to_numpy(zero_copy_only=False))
        yield b, models, items, correct


def write(out, rows, extra=()):
    """rows: (benchmark, item_id, difficulty, seconds, *extra values); extra names those values."""
    columns = {
        "benchmark": [r[0] for r in rows],
        "item_id": [r[1] for r in rows],
        "difficulty": [float(r[2]) for r in rows],
        "seconds": [float(r[3]) for r in rows],
    }
    for k, name in enumerate(extra):
        columns[name] = [float(r[4 + k]) for r in rows]
    pq.write_table(pa.table(columns), out)


def girth_matrix(models, items, correct):
    """girth's items x subjects layout, missing responses tagged as girth expects."""
    from girth import tag_missing_data

    model_ix = {m: k for k, m in enumerate(sorted(set(models)))}
    item_ix = {i: k for k, i in enumerate(sorted(set(items)))}
    data = np.full((len(item_ix), len(model_ix)), 99, dtype=np.int32)
    data[[item_ix[i] for i in items], [model_ix[m] for m in models]] = correct
    return tag_missing_data(data, [0, 1]), sorted(item_ix, key=item_ix.get)


def fit_pyirt(args):
    import torch
    from py_irt.config import IrtConfig
    from py_irt.dataset import Dataset
    from py_irt.training import IrtModelTrainer
    import pandas as pd

    rows = []
    for bench, models, items, correct in by_benchmark(args.responses):
        wide = pd.DataFrame({"m": models, "i": items, "y": correct}).pivot(index="m", columns="i", values="y")
        wide = wide.reset_index()
        item_columns = [c for c in wide.columns if c != "m"]
        dataset = Dataset.from_pandas(wide, subject_column="m", item_columns=item_columns)
        config = IrtConfig(
            model_type="1pl",
            priors=args.priors,
            epochs=args.epochs,
            lr=0.1,
            lr_decay=0.9999,
            seed=args.seed,
            log_every=10_000,
        )
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        trainer = IrtModelTrainer(data_path=None, config=config, dataset=dataset, verbose=False)
        trainer.train(device="cpu")
        seconds = time.perf_counter() - started
        params = trainer.last_params
        for ix, item in params["item_ids"].items():
            rows.append((bench, item, params["diff"][int(ix)], seconds))
        print(f"py-irt {args.priors} seed {args.seed} {bench or '(one benchmark)'}: {seconds:.1f} s", file=sys.stderr)
    write(args.out, rows)


def fit_girth(args):
    from girth import rasch_mml

    rows = []
    for bench, models, items, correct in by_benchmark(args.responses):
        started = time.perf_counter()
        data, names = girth_matrix(models, items, correct)
        result = rasch_mml(data)
        seconds = time.perf_counter() - started
        for name, b in zip(names, result["Difficulty"]):
            rows.append((bench, name, b, seconds))
        print(f"girth rasch_mml {bench or '(one benchmark)'}: {seconds:.1f} s", file=sys.stderr)
    write(args.out, rows)


def fit_girth_2pl(args):
    from girth import twopl_mml

    rows = []
    for bench, models, items, correct in by_benchmark(args.responses):
        started = time.perf_counter()
        data, names = girth_matrix(models, items, correct)
        result = twopl_mml(data)
        seconds = time.perf_counter() - started
        share = {}
        for i, y in zip(items, correct):
            n, k = share.get(i, (0, 0))
            share[i] = (n + 1, k + int(y))
        for name, b, a in zip(names, result["Difficulty"], result["Discrimination"]):
            n, k = share[name]
            rows.append((bench, name, b, seconds, a, k / n))
        print(f"girth twopl_mml {bench or '(one benchmark)'}: {seconds:.1f} s", file=sys.stderr)
    write(args.out, rows, extra=("discrimination", "p_correct"))


def ranks(x):
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    sx = np.asarray(x)[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return r


def deciles(x, n=10):
    order = np.argsort(x, kind="stable")
    bins = np.empty(len(x), dtype=int)
    bins[order] = np.minimum((np.arange(len(x)) * n) // len(x), n - 1)
    return bins


def report(args):
    def load(path):
        t = pq.read_table(path)
        col = "difficulty" if "difficulty" in t.column_names else "true_difficulty"
        bench = t.column("benchmark").to_pylist() if "benchmark" in t.column_names else [""] * t.num_rows
        ids = t.column("item_id").cast(pa.string()).to_pylist()
        vals = t.column(col).to_pylist()
        out = {}
        for b, i, v in zip(bench, ids, vals):
            out.setdefault(b if len(set(bench)) > 1 else "", {})[i] = v
        return out

    reference = load(args.reference)
    print("| fit | benchmark | items | spearman | decile agreement |")
    print("|---|---|---|---|---|")
    for path in args.fits:
        fit = load(path)
        for bench, ref in sorted(reference.items()):
            est = fit.get(bench) or fit.get("", {})
            common = [i for i in ref if i in est]
            if not common:
                continue
            x = np.array([est[i] for i in common])
            y = np.array([ref[i] for i in common])
            rho = np.corrcoef(ranks(x), ranks(y))[0, 1]
            agree = np.mean(deciles(x) == deciles(y))
            print(f"| {path} | {bench or '-'} | {len(common)} | {rho:.5f} | {agree:.3f} |")


def fit_numpy_2pl(args):
    rows = []
    grid = np.linspace(-6.0, 6.0, 121)
    log_weight = -0.5 * grid**2
    log_weight -= np.log(np.exp(log_weight).sum())
    for bench, models, items, correct in by_benchmark(args.responses):
        started = time.perf_counter()
        model_ix = {m: k for k, m in enumerate(sorted(set(models)))}
        names = sorted(set(items))
        item_ix = {i: k for k, i in enumerate(names)}
        rows_ix = np.array([model_ix[m] for m in models])
        cols_ix = np.array([item_ix[i] for i in items])
        y = np.zeros((len(model_ix), len(names)))
        seen = np.zeros_like(y)
        y[rows_ix, cols_ix] = correct
        seen[rows_ix, cols_ix] = 1.0
        a, d = np.ones(len(names)), np.zeros(len(names))
        previous = -np.inf
        for iteration in range(args.max_iter):
            z = np.outer(grid, a) + d
            log_p, log_q = -np.logaddexp(0, -z), -np.logaddexp(0, z)
            log_post = y @ log_p.T + (seen - y) @ log_q.T + log_weight
            top = log_post.max(axis=1, keepdims=True)
            post = np.exp(log_post - top)
            total = post.sum(axis=1, keepdims=True)
            objective = float((top[:, 0] + np.log(total[:, 0])).sum())
            post /= total
            n_k, r_k = post.T @ seen, post.T @ y  # nodes x items
            for _ in range(5):  # Newton steps on every item at once
                p = 1.0 / (1.0 + np.exp(-(np.outer(grid, a) + d)))
                res, info = r_k - n_k * p, n_k * p * (1.0 - p)
                g_a, g_d = (res * grid[:, None]).sum(0), res.sum(0)
                h_aa, h_dd, h_ad = (info * grid[:, None] ** 2).sum(0), info.sum(0), (info * grid[:, None]).sum(0)
                det = h_aa * h_dd - h_ad**2
                a += np.clip((h_dd * g_a - h_ad * g_d) / det, -1.0, 1.0)
                d += np.clip((h_aa * g_d - h_ad * g_a) / det, -1.0, 1.0)
            if abs(objective - previous) < 1e-9 * seen.sum():
                break
            previous = objective
        seconds = time.perf_counter() - started
        share = (y.sum(0) / np.maximum(seen.sum(0), 1.0)).tolist()
        for k, name in enumerate(names):
            rows.append((bench, name, -d[k] / a[k], seconds, a[k], share[k]))
        print(f"numpy 2PL EM {bench or '(one benchmark)'}: {seconds:.1f} s, {iteration + 1} iterations", file=sys.stderr)
    write(args.out, rows, extra=("discrimination", "p_correct"))


def spearman(x, y):
    return float(np.corrcoef(ranks(np.asarray(x)), ranks(np.asarray(y)))[0, 1])


def report2pl(args):
    def load(path):
        t = pq.read_table(path).to_pandas()
        if "benchmark" not in t.columns:
            t["benchmark"] = ""
        t["item_id"] = t["item_id"].astype(str)
        return {b: part.set_index("item_id") for b, part in t.groupby("benchmark")}

    # girth bounds its discriminations to [0.2, 5] (scipy's fminbound, to within 1e-5): items
    # at a bound tie in its ranks, and an item at the lower bound has a difficulty the data
    # hardly pin down (b = -d / a with a near 0).
    lo, hi = 0.2 + 1e-3, 5.0 - 1e-3
    reference = load(args.reference)
    print(
        "| fit | benchmark | in [0.02, 0.98] | spearman b | spearman b, a >= 0.2 in both | spearman a "
        "| spearman a, reference a inside (0.2, 5) | max a | a < 0.1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.fits:
        fit = load(path)
        for bench, ref in sorted(reference.items()):
            est = fit.get(bench)
            if est is None:
                continue
            common = ref.index.intersection(est.index)
            r, e = ref.loc[common], est.loc[common]
            band = (r["p_correct"] >= 0.02) & (r["p_correct"] <= 0.98)
            sloped = band & (r["discrimination"] >= lo) & (e["discrimination"] >= 0.2)
            inside = band & (r["discrimination"] > lo) & (r["discrimination"] < hi)

            def rho(column, mask):
                return f"{spearman(e[column][mask], r[column][mask]):.4f} ({int(mask.sum())})"

            print(
                f"| {path.rsplit('/', 1)[-1]} | {bench or '-'} | {int(band.sum())} | {rho('difficulty', band)} "
                f"| {rho('difficulty', sloped)} | {rho('discrimination', band)} | {rho('discrimination', inside)} "
                f"| {e['discrimination'].max():.2f} | {int((e['discrimination'] < 0.1).sum())} |"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pyirt")
    p.add_argument("responses")
    p.add_argument("out")
    p.add_argument("--priors", default="vague", choices=["vague", "hierarchical"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epochs", type=int, default=2000)
    p.set_defaults(run=fit_pyirt)
    g = sub.add_parser("girth")
    g.add_argument("responses")
    g.add_argument("out")
    g.set_defaults(run=fit_girth)
    g2 = sub.add_parser("girth2pl")
    g2.add_argument("responses")
    g2.add_argument("out")
    g2.set_defaults(run=fit_girth_2pl)
    n2 = sub.add_parser("numpy2pl")
    n2.add_argument("responses")
    n2.add_argument("out")
    n2.add_argument("--max-iter", type=int, default=1000)
    n2.set_defaults(run=fit_numpy_2pl)
    r2 = sub.add_parser("report2pl")
    r2.add_argument("reference")
    r2.add_argument("fits", nargs="+")
    r2.set_defaults(run=report2pl)
    r = sub.add_parser("report")
    r.add_argument("reference")
    r.add_argument("fits", nargs="+")
    r.set_defaults(run=report)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

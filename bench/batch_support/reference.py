"""The physical reference: the model's own predict on in-memory numpy arrays, no I/O
(run in the model-server image, in a container limited to one core).

    python reference.py --kind iris|xgboost --model-dir DIR --input DIR [--rows N] [--repeats 5] [--save FILE]

Loads up to --rows rows of the input files into one C-contiguous matrix (the file's dtype),
then times predict on all of it --repeats times; prints one JSON line with the median.
iris:    model.predict(X) (what the worker's default output "predict" calls).
xgboost: booster.predict(DMatrix(X)) (what the server's backend does) and
         booster.inplace_predict(X) (no DMatrix copy); the faster is the reference.
Also timed, for the HTTP comparison (never the reference): the same predict on slices of 100
rows, the model's own share of a 100-row request.
--save writes the ids and predictions of the first 100,000 rows (.npz), to check the
worker's output against.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import time

import numpy as np
import pyarrow.parquet as pq

CHECK_ROWS = 100_000
SMALL_BATCH, SMALL_ROWS = 100, 20_000


def load_rows(input_dir: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    ids, blocks, have = [], [], 0
    for path in sorted(glob.glob(os.path.join(input_dir, "*.parquet"))):
        table = pq.read_table(path)
        n = min(table.num_rows, rows - have)
        table = table.slice(0, n)
        ids.append(table.column("id").to_numpy())
        blocks.append(np.column_stack([table.column(c).to_numpy() for c in table.column_names if c != "id"]))
        have += n
        if have >= rows:
            break
    return np.concatenate(ids), np.ascontiguousarray(np.concatenate(blocks))


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    fn()  # warm-up: first-call allocations, lazy initialisation
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), out


def predictors(kind: str, model_dir: str) -> dict:
    """Each way to predict, as a function of the matrix."""
    if kind == "iris":
        import joblib

        model = joblib.load(os.path.join(model_dir, "model.joblib"))
        return {"predict": model.predict}
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "model.json"))
    return {"inplace_predict": booster.inplace_predict, "dmatrix_predict": lambda X: booster.predict(xgb.DMatrix(X))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("iris", "xgboost"), required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--save")
    args = parser.parse_args()
    ids, X = load_rows(args.input, args.rows)
    ways, results, first = predictors(args.kind, args.model_dir), {}, None
    for name, fn in ways.items():
        seconds, out = timed(lambda: fn(X), args.repeats)
        results[name] = {"seconds": seconds, "rows_per_s": len(X) / seconds}
        first = out if first is None else first
    best = max(results, key=lambda k: results[k]["rows_per_s"])
    slices = [np.ascontiguousarray(X[i:i + SMALL_BATCH]) for i in range(0, min(len(X), SMALL_ROWS), SMALL_BATCH)]
    seconds, _ = timed(lambda: [ways[best](x) for x in slices], args.repeats)
    small = {"method": best, "batch": SMALL_BATCH, "rows_per_s": len(slices) * SMALL_BATCH / seconds}
    if args.save:
        np.savez(args.save, id=ids[:CHECK_ROWS], predict=np.asarray(first)[:CHECK_ROWS])
    print(json.dumps({"rows": len(X), "dtype": X.dtype.name, "repeats": args.repeats, "methods": results,
                      "method": best, "rows_per_s": results[best]["rows_per_s"], "small_batches": small,
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()

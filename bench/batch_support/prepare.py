"""Train one benchmark model and write its dataset as Parquet files (run in the model-server image).

    python prepare.py --out DIR --kind iris|xgboost --rows N --file-rows M --row-group R

DIR/KIND/model/   the model, as the server and the batch worker load it
DIR/KIND/input/   part-NNNNN.parquet: an int64 "id" column first, then the features
DIR/KIND/meta.json what was trained and written

iris:    4 float64 features, 3 classes (make_classification: 3 informative, 1 redundant);
         RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=1). A forest rather than
         the iris LogisticRegression: a logistic model costs a few flops per row, so any
         benchmark of it measures only I/O; 50 trees of depth 10 are what a small production
         tabular classifier looks like.
xgboost: 20 float32 features, binary (10 informative); 100 trees of depth 6 (XGBoost's
         default depth), tree_method hist, saved as a Booster JSON model.
Rows are drawn from a pool sampled from the training distribution, plus a little noise, so
every file is different and scores like production data would.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import make_classification

KINDS = {
    "iris": {"n_features": 4, "n_informative": 3, "n_redundant": 1, "n_classes": 3, "dtype": np.float64},
    "xgboost": {"n_features": 20, "n_informative": 10, "n_redundant": 4, "n_classes": 2, "dtype": np.float32},
}
TRAIN_ROWS = 50_000


def train(kind: str, X: np.ndarray, y: np.ndarray, model_dir: str) -> dict:
    os.makedirs(model_dir, exist_ok=True)
    start = time.perf_counter()
    if kind == "iris":
        import joblib
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=1, random_state=0).fit(X, y)
        joblib.dump(model, os.path.join(model_dir, "model.joblib"))
        desc = "sklearn RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=1), 4 features, 3 classes"
        accuracy = float(model.score(X, y))
    else:
        import xgboost as xgb

        model = xgb.XGBClassifier(n_estimators=100, max_depth=6, tree_method="hist", n_jobs=2, random_state=0).fit(X, y)
        model.get_booster().save_model(os.path.join(model_dir, "model.json"))
        desc = "xgboost binary:logistic, 100 trees, max_depth 6, 20 features"
        accuracy = float((model.predict(X) == y).mean())
    return {"model": desc, "train_rows": len(X), "train_accuracy": round(accuracy, 4),
            "train_seconds": round(time.perf_counter() - start, 2)}


def write_files(kind: str, pool: np.ndarray, rows: int, file_rows: int, row_group: int, input_dir: str) -> dict:
    os.makedirs(input_dir, exist_ok=True)
    rng = np.random.default_rng(1)
    dtype = KINDS[kind]["dtype"]
    names = [f"f{j}" for j in range(pool.shape[1])]
    written, files, size = 0, 0, 0
    while written < rows:
        n = min(file_rows, rows - written)
        X = (pool[rng.integers(0, len(pool), n)] + rng.normal(0, 0.01, (n, pool.shape[1]))).astype(dtype)
        columns = [pa.array(np.arange(written, written + n, dtype=np.int64))] + [pa.array(X[:, j]) for j in range(X.shape[1])]
        path = os.path.join(input_dir, f"part-{files:05d}.parquet")
        pq.write_table(pa.Table.from_arrays(columns, names=["id", *names]), path, row_group_size=row_group)
        size += os.path.getsize(path)
        written, files = written + n, files + 1
    return {"rows": written, "files": files, "bytes": size, "file_rows": file_rows, "row_group": row_group,
            "features": names, "dtype": np.dtype(dtype).name}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--file-rows", type=int, required=True)
    parser.add_argument("--row-group", type=int, required=True)
    args = parser.parse_args()
    spec = dict(KINDS[args.kind])
    spec.pop("dtype")
    pool_rows = min(args.rows, 1_000_000)
    X, y = make_classification(n_samples=TRAIN_ROWS + pool_rows, n_clusters_per_class=1, random_state=0, **spec)
    base = os.path.join(args.out, args.kind)
    meta = train(args.kind, X[:TRAIN_ROWS], y[:TRAIN_ROWS], os.path.join(base, "model"))
    meta.update(write_files(args.kind, X[TRAIN_ROWS:], args.rows, args.file_rows, args.row_group, os.path.join(base, "input")))
    with open(os.path.join(base, "meta.json"), "w") as f:
        json.dump(meta, f)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()

"""Train two iris classifiers and write them as OUT/iris/v1/model.joblib and
OUT/iris/v2/model.joblib (upload.py puts them into the S3 server).

v1 is a logistic regression, v2 a small decision tree: both answer the same classes for
typical flowers, so the rollout changes nothing a client would notice but the variant.
Runs in the cluster (train.yaml) with the model server's image, so the models are pickled
by the scikit-learn that serves them.
"""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier


def main(out: Path) -> None:
    X, y = load_iris(return_X_y=True)
    models = {
        "v1": LogisticRegression(max_iter=500).fit(X, y),
        "v2": DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y),
    }
    for version, model in models.items():
        path = out / "iris" / version / "model.joblib"
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path)
        print(f"trained iris/{version}: {type(model).__name__}, training accuracy {model.score(X, y):.3f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

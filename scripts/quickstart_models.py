"""Example models for `make quickstart`, generated on the machine (nothing binary is committed).

Run with the MLServer venv's Python (it has scikit-learn, and LightGBM once installed):

    python scripts/quickstart_models.py CONFIG_DIR

writes CONFIG_DIR/models/<name>/model.* and CONFIG_DIR/<name>.yaml (an InferenceService in
ModelMesh mode whose storageUri is the model dir, relative to CONFIG_DIR). A YAML that is
already there is kept, so edits survive a second run. Prints the names of the models written.
"""

from __future__ import annotations

import sys
from pathlib import Path

ISVC = """\
# A model for `modelmesh local`: the same InferenceService you would apply to a cluster.
# storageUri is relative to this directory (file:///abs/path, s3://, gs://, https:// work too).
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  annotations:
    serving.kserve.io/deploymentMode: ModelMesh
spec:
  predictor:
    model:
      modelFormat:
        name: {fmt}
      storageUri: models/{name}
"""


def iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def sklearn_iris(dest: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), dest / "model.joblib")


def lightgbm_iris(dest: Path) -> None:
    import lightgbm

    X, y = iris()
    booster = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 8},
                             lightgbm.Dataset(X, label=y), num_boost_round=20)
    booster.save_model(str(dest / "model.bst"))


EXAMPLES = [("sklearn-iris", "sklearn", sklearn_iris, "sklearn"), ("lightgbm-iris", "lightgbm", lightgbm_iris, "lightgbm")]


def main(config_dir: Path) -> int:
    written = []
    for name, fmt, train, module in EXAMPLES:
        try:
            __import__(module)
        except ImportError:
            print(f"skipping {name}: {module} is not installed in {sys.executable}", file=sys.stderr)
            continue
        dest = config_dir / "models" / name
        dest.mkdir(parents=True, exist_ok=True)
        if not any(dest.glob("model.*")):
            train(dest)
        yaml_path = config_dir / f"{name}.yaml"
        if not yaml_path.exists():
            yaml_path.write_text(ISVC.format(name=name, fmt=fmt))
        written.append(name)
    print(" ".join(written))
    return 0 if written else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))

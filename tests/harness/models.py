"""Small real models, generated at test time (nothing binary is committed)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

_TRAIN_IRIS = textwrap.dedent("""
    import sys, joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), sys.argv[1])
""")

# Rows of the iris data set and their classes (setosa=0, versicolor=1, virginica=2).
IRIS_SAMPLES = [([5.1, 3.5, 1.4, 0.2], 0), ([6.4, 3.2, 4.5, 1.5], 1), ([6.3, 3.3, 6.0, 2.5], 2)]


def sklearn_iris(dest: Path, python: Path, name: str) -> Path:
    """An MLServer model dir: model.joblib (LogisticRegression on iris) + model-settings.json."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), "-c", _TRAIN_IRIS, str(dest / "model.joblib")], check=True, capture_output=True)
    (dest / "model-settings.json").write_text(json.dumps({
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }))
    return dest


_DOUBLER = textwrap.dedent('''
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        """Returns OUTPUT0 = 2 * INPUT0."""

        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                out = pb_utils.Tensor("OUTPUT0", (x * 2).astype(np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            return responses
''')

_DOUBLER_CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
instance_group [ { kind: KIND_CPU, count: 1 } ]
"""


def triton_python_doubler(repo: Path, name: str) -> Path:
    """A Triton python-backend model in `repo/<name>` (config.pbtxt + 1/model.py)."""
    model_dir = repo / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(_DOUBLER)
    (model_dir / "config.pbtxt").write_text(_DOUBLER_CONFIG)
    return model_dir


def iris_request(name: str):
    """A V2 ModelInferRequest classifying IRIS_SAMPLES (FP64, shape [n, 4])."""
    from modelmesh.protos import grpc_predict_v2_pb2 as v2

    rows = [x for x, _ in IRIS_SAMPLES]
    req = v2.ModelInferRequest(model_name=name)
    t = req.inputs.add(name="input-0", datatype="FP64", shape=[len(rows), 4])
    t.contents.fp64_contents.extend(v for row in rows for v in row)
    return req


def iris_classes(resp) -> list[int]:
    """The predicted classes in a ModelInferResponse (raw or typed contents)."""
    import struct

    if resp.raw_output_contents:
        return list(struct.unpack(f"<{len(IRIS_SAMPLES)}q", resp.raw_output_contents[0]))
    return list(resp.outputs[0].contents.int64_contents)


_SLEEPER = textwrap.dedent('''
    import time

    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        """Sleeps SECONDS[0] seconds, then returns it: a slow model for deadline tests."""

        def execute(self, requests):
            responses = []
            for request in requests:
                seconds = pb_utils.get_input_tensor_by_name(request, "SECONDS").as_numpy()
                time.sleep(float(seconds.flat[0]))
                out = pb_utils.Tensor("SLEPT", seconds.astype(np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            return responses
''')

_SLEEPER_CONFIG = """
backend: "python"
max_batch_size: 0
input [ { name: "SECONDS", data_type: TYPE_FP32, dims: [ 1 ] } ]
output [ { name: "SLEPT", data_type: TYPE_FP32, dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU, count: 2 } ]
"""


def triton_python_sleeper(repo: Path, name: str = "sleeper") -> Path:
    """A Triton python-backend model that sleeps as long as its input says."""
    model_dir = repo / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(_SLEEPER)
    (model_dir / "config.pbtxt").write_text(_SLEEPER_CONFIG)
    return model_dir

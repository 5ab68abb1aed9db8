"""Triton python-backend models for protocol tests, generated at test time.

`echo`: one optional rank-2 input per V2 datatype, IN_<TYPE>, returned as OUT_<TYPE>; plus
output PARAMS, a BYTES tensor holding the JSON of the request parameters the model saw
(Triton adds forwarded gRPC headers there; response parameters are not settable in this
Triton's python backend).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

# V2 datatype -> Triton config type. BF16 travels as raw bytes only (numpy has no bfloat16).
ECHO_DATATYPES = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64", "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING", "BF16": "TYPE_BF16",
}

_ECHO = textwrap.dedent('''
    import numpy as np
    import triton_python_backend_utils as pb_utils

    NAMES = {names!r}


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                outs = []
                for name in NAMES:
                    tensor = pb_utils.get_input_tensor_by_name(request, "IN_" + name)
                    if tensor is None:
                        continue
                    if name == "BF16":  # no numpy dtype: pass the buffer through DLPack
                        outs.append(pb_utils.Tensor.from_dlpack("OUT_" + name, tensor.to_dlpack()))
                    else:
                        outs.append(pb_utils.Tensor("OUT_" + name, tensor.as_numpy()))
                params = request.parameters()
                outs.append(pb_utils.Tensor("PARAMS", np.array([params.encode()], dtype=np.object_)))
                responses.append(pb_utils.InferenceResponse(output_tensors=outs))
            return responses
''')


def triton_python_echo(repo: Path, name: str = "echo") -> Path:
    model_dir = repo / name
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(_ECHO.format(names=list(ECHO_DATATYPES)))
    inputs = ",\n".join(
        f'  {{ name: "IN_{n}", data_type: {t}, dims: [ -1, -1 ], optional: true }}' for n, t in ECHO_DATATYPES.items()
    )
    outputs = ",\n".join(f'  {{ name: "OUT_{n}", data_type: {t}, dims: [ -1, -1 ] }}' for n, t in ECHO_DATATYPES.items())
    (model_dir / "config.pbtxt").write_text(
        'backend: "python"\nmax_batch_size: 0\n'
        f"input [\n{inputs}\n]\n"
        f'output [\n{outputs},\n  {{ name: "PARAMS", data_type: TYPE_STRING, dims: [ 1 ] }}\n]\n'
        'instance_group [ { kind: KIND_CPU, count: 1 } ]\n'
    )
    return model_dir

"""Triton layout: `<root>/<id>/config.pbtxt` + `<root>/<id>/<version>/model.<ext>`.

- A native repository (a dir with config.pbtxt) is linked through; config.pbtxt is rewritten
  without `name` (Triton requires it to equal the dir name, which is the mesh's model id)
  and with the schema's inputs/outputs, if a schema is given.
- Otherwise the version dir is the largest numeric subdir (or `1`) and the model is placed
  under the file/dir name Triton's backend for the model type expects; a schema alone
  generates config.pbtxt with backend, inputs and outputs.
"""

from __future__ import annotations

import os

from modelmesh.adapters import pbtxt
from modelmesh.adapters.errors import InvalidModel
from modelmesh.adapters.files import confined, fresh_dir, largest_version_dir, require_exists, symlink, write_atomic
from modelmesh.adapters.schema import ModelSchema, TensorSpec, load_schema

CONFIG_FILE = "config.pbtxt"
LEGACY_SCHEMA_FILE = "_schema.json"

# Name of the model inside the version dir, by what the pulled model is (dir or file).
DIR_NAMES = {"tensorflow": "model.savedmodel", "onnx": "model.onnx", "keras": "model.savedmodel"}
FILE_NAMES = {"tensorflow": "model.graphdef", "tensorrt": "model.plan", "onnx": "model.onnx", "pytorch": "model.pt"}
BACKENDS = {
    "tensorflow": "tensorflow", "tensorrt": "tensorrt", "onnx": "onnxruntime", "pytorch": "pytorch",
    "keras": "tensorflow",
}
# KServe V2 datatype -> Triton config data_type.
DATA_TYPES = {
    "BOOL": "TYPE_BOOL", "UINT8": "TYPE_UINT8", "UINT16": "TYPE_UINT16", "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64", "INT8": "TYPE_INT8", "INT16": "TYPE_INT16", "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64", "FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64",
    "BF16": "TYPE_BF16", "BYTES": "TYPE_STRING", "STRING": "TYPE_STRING",
}


def tensor_entries(tensors: tuple[TensorSpec, ...], strip_batch_dim: bool) -> list[pbtxt.Message]:
    out = []
    for t in tensors:
        dims = list(t.shape[1:] if strip_batch_dim else t.shape)
        out.append(pbtxt.Message([
            ("name", pbtxt.quote(t.name)), ("data_type", DATA_TYPES[t.datatype]), ("dims", [str(d) for d in dims]),
        ]))
    return out


def _max_batch_size(config: pbtxt.Message) -> int:
    raw = config.first("max_batch_size")
    if raw is None:
        return 0
    try:
        return int(raw) if isinstance(raw, str) else 0
    except ValueError:
        raise InvalidModel(f"config.pbtxt: max_batch_size {raw!r} is not an integer") from None


def rewrite_config(text: str, schema: ModelSchema | None) -> str:
    """A native config.pbtxt made loadable under the mesh's model id.

    With max_batch_size > 0 Triton adds the batch dimension itself, while a schema states it
    explicitly: every schema tensor must then start with -1, which is stripped.
    """
    try:
        config = pbtxt.parse(text)
    except pbtxt.PbtxtError as e:
        raise InvalidModel(f"config.pbtxt is not valid protobuf text: {e}") from None
    config.remove("name")
    if schema is not None:
        batched = _max_batch_size(config) > 0
        if batched:
            for t in (schema.inputs or ()) + (schema.outputs or ()):
                if not t.shape or t.shape[0] != -1:
                    raise InvalidModel(
                        "conflicting model configuration: with a schema and config.pbtxt max_batch_size > 0, "
                        f"the first dimension of every input and output must be -1 (tensor {t.name!r} has "
                        f"shape {list(t.shape)})"
                    )
        if schema.inputs is not None:
            config.replace("input", tensor_entries(schema.inputs, batched))
        if schema.outputs is not None:
            config.replace("output", tensor_entries(schema.outputs, batched))
    return pbtxt.format(config)


def generate_config(model_type: str, schema: ModelSchema) -> str:
    config = pbtxt.Message()
    if model_type in BACKENDS:
        config.fields.append(("backend", pbtxt.quote(BACKENDS[model_type])))
    for name, tensors in (("input", schema.inputs), ("output", schema.outputs)):
        for entry in tensor_entries(tensors or (), strip_batch_dim=False):
            config.fields.append((name, entry))
    return pbtxt.format(config)


def _lay_out_native(source: str, target: str, schema: ModelSchema | None) -> None:
    for name in sorted(os.listdir(source)):
        if name == CONFIG_FILE:
            with open(os.path.join(source, name), encoding="utf-8", errors="replace") as f:
                write_atomic(os.path.join(target, CONFIG_FILE), rewrite_config(f.read(), schema))
        else:
            symlink(os.path.join(source, name), confined(target, name))


def _place(model_path: str, version: str, model_type: str, target: str, schema: ModelSchema | None) -> None:
    if os.path.isdir(model_path):
        dir_name = DIR_NAMES.get(model_type)
        link = confined(target, version, dir_name) if dir_name else confined(target, version)
    else:
        link = confined(target, version, FILE_NAMES.get(model_type, os.path.basename(model_path)))
    symlink(model_path, link)
    if schema is not None:
        write_atomic(os.path.join(target, CONFIG_FILE), generate_config(model_type, schema))


def lay_out(root: str, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
    require_exists(model_path)
    schema = load_schema(schema_path) if schema_path else None
    target = fresh_dir(confined(root, model_id))
    if not os.path.isdir(model_path):
        if model_type == "keras":
            raise InvalidModel(
                "keras .h5 files need a conversion to a TensorFlow SavedModel that this adapter does not do; "
                "store the model as a SavedModel directory"
            )
        _place(model_path, "1", model_type, target, schema)
        return target
    names = sorted(os.listdir(model_path))
    if CONFIG_FILE in names:
        _lay_out_native(model_path, target, schema)
        return target
    if not names:
        raise InvalidModel(f"model directory {os.path.basename(model_path)} is empty")
    version = largest_version_dir(model_path)
    path = model_path
    if version is not None:
        path = os.path.join(model_path, version)
        names = sorted(os.listdir(path))
    names = [n for n in names if n != LEGACY_SCHEMA_FILE]
    # A dir holding just the model file/dir of a known type: place that entry.
    if len(names) == 1 and (model_type in DIR_NAMES or model_type in FILE_NAMES):
        path = os.path.join(path, names[0])
    _place(path, version or "1", model_type, target, schema)
    return target

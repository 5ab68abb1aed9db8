"""The model schema file (`schema_path`): a subset of KServe V2 model metadata.

    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 784]}], "outputs": [...]}
"""

from __future__ import annotations

from dataclasses import dataclass

from modelmesh.config.json_object import parse_json_object
from modelmesh.adapters.errors import InvalidModel

DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES", "BF16", "STRING",
)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSchema:
    inputs: tuple[TensorSpec, ...] | None  # None: the schema does not say (keep the model's own)
    outputs: tuple[TensorSpec, ...] | None


def _tensors(raw: object, where: str) -> tuple[TensorSpec, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidModel(f"model schema: {where} must be a list")
    out = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict):
            raise InvalidModel(f"model schema: {where}[{i}] must be an object")
        name, datatype, shape = t.get("name"), t.get("datatype"), t.get("shape", [])
        if not isinstance(name, str) or not name:
            raise InvalidModel(f"model schema: {where}[{i}] needs a name")
        if datatype not in DATATYPES:
            raise InvalidModel(f"model schema: {where}[{i}] ({name}) has unknown datatype {datatype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidModel(f"model schema: {where}[{i}] ({name}) shape must be a list of integers")
        out.append(TensorSpec(name, datatype, tuple(shape)))
    return tuple(out)


def parse_schema(text: str) -> ModelSchema:
    raw = parse_json_object(text, "model schema", InvalidModel, empty_ok=False)
    return ModelSchema(_tensors(raw.get("inputs"), "inputs"), _tensors(raw.get("outputs"), "outputs"))


def load_schema(path: str) -> ModelSchema:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidModel(f"cannot read model schema {path}: {e}") from None
    return parse_schema(text)

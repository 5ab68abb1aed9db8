"""OVMS layout: `<root>/<id>/<version>/` linking the model files; `<root>/<id>` is the
`base_path` written into OVMS's config JSON."""

from __future__ import annotations

import os

from modelmesh.adapters.files import confined, fresh_dir, largest_version_dir, require_exists, symlink

ONNX_FILE = "model.onnx"


def lay_out(root: str, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
    # OVMS reads inputs/outputs from the model itself; a schema is not used.
    require_exists(model_path)
    target = fresh_dir(confined(root, model_id))
    if not os.path.isdir(model_path):
        name = ONNX_FILE if model_type == "onnx" else os.path.basename(model_path)
        symlink(model_path, confined(target, "1", name))
        return target
    version = largest_version_dir(model_path)
    if version is not None:
        symlink(os.path.join(model_path, version), confined(target, version))
    else:
        symlink(model_path, confined(target, "1"))
    return target

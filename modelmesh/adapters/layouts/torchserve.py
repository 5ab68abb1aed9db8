"""TorchServe layout: `<root>/<id>.mar` linking the model archive (TorchServe's model store)."""

from __future__ import annotations

import os

from modelmesh.adapters.errors import InvalidModel
from modelmesh.adapters.files import confined, remove_path, require_exists, symlink

MAR_SUFFIX = ".mar"


def archive_name(model_id: str) -> str:
    return model_id + MAR_SUFFIX


def find_archive(model_path: str) -> str:
    """The .mar file itself, or the single .mar inside a pulled directory."""
    require_exists(model_path)
    if not os.path.isdir(model_path):
        return model_path
    archives = sorted(n for n in os.listdir(model_path) if n.endswith(MAR_SUFFIX))
    if len(archives) != 1:
        found = "none" if not archives else ", ".join(archives)
        raise InvalidModel(
            f"TorchServe needs one model archive (.mar); the model path is a directory with {found}"
        )
    return os.path.join(model_path, archives[0])


def lay_out(root: str, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
    # TorchServe takes inputs as raw bytes; a schema is not used.
    archive = find_archive(model_path)
    link = confined(root, archive_name(model_id))
    remove_path(link)
    symlink(archive, link)
    return link

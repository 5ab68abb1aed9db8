"""Local layout of pulled models and the one rule every local path obeys: it stays inside
the model's directory, whatever names a remote store, a model key or a PVC symlink holds."""

from __future__ import annotations

import os
import posixpath

from modelmesh.modelspec.ids import id_problem
from modelmesh.storage.errors import PullInputError

DEFAULT_MODEL_NAME = "_model"
COLLIDING_SCHEMA_NAME = "_schema.json"


def check_model_id(model_id: str) -> None:
    problem = id_problem(model_id)
    if problem:
        raise PullInputError(f"invalid model id {model_id!r}: it must be a plain directory name ({problem})")


def remote_basename(remote_path: str) -> str:
    """Local name of a pulled path: its last segment, `_model` for an empty path, `.` or `/`."""
    name = posixpath.basename(remote_path.rstrip("/"))
    if name in ("", "."):
        return DEFAULT_MODEL_NAME
    if name == ".." or "\x00" in name:
        raise PullInputError(f"invalid model path {remote_path!r}")
    return name


def schema_basename(schema_path: str, model_name: str) -> str:
    name = remote_basename(schema_path)
    return COLLIDING_SCHEMA_NAME if name == model_name else name


def normalize_prefix(remote_path: str) -> str:
    """Object-store prefix of a model path: no leading/trailing `/`, `.` segments removed."""
    parts = [p for p in remote_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PullInputError(f"invalid model path {remote_path!r}: '..' is not allowed")
    return "/".join(parts)


def confined_join(base: str, relative: str) -> str:
    """`base/relative`, refusing any name that would land outside `base`.

    Rejects absolute names, `..` segments, backslashes used as separators on some stores,
    and NUL; a hostile listing fails the pull rather than writing outside the model dir.
    """
    if "\x00" in relative:
        raise PullInputError(f"refusing remote name with NUL byte: {relative!r}")
    if relative.startswith(("/", "\\")):
        raise PullInputError(f"refusing absolute remote name {relative!r}")
    parts = relative.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        raise PullInputError(f"refusing remote name {relative!r}: it escapes the model directory")
    clean = [p for p in parts if p not in ("", ".")]
    if not clean:
        raise PullInputError(f"empty remote name {relative!r}")
    path = os.path.join(base, *clean)
    # Last line of defence: nothing we create under base is a symlink, but check anyway.
    real_base = os.path.realpath(base)
    real_parent = os.path.realpath(os.path.dirname(path))
    if real_parent != real_base and not real_parent.startswith(real_base + os.sep):
        raise PullInputError(f"refusing remote name {relative!r}: it escapes the model directory")
    return path


def is_within(path: str, root: str) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root + os.sep)


def disk_size(path: str) -> int:
    """Total bytes under `path`, following symlinks (PVC links), each file counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        p = stack.pop()
        try:
            st = os.stat(p)
        except OSError:
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            continue  # hard links and symlink cycles
        seen.add(ident)
        if os.path.isdir(p):
            try:
                stack.extend(os.path.join(p, n) for n in os.listdir(p))
            except OSError:
                continue
        else:
            total += st.st_size
    return total

"""File-system helpers the layouts share: confined joins, version dirs, cleanup."""

from __future__ import annotations

import os
import shutil

from modelmesh.adapters.errors import InvalidModel


def confined(base: str, *names: str) -> str:
    """`base/names...`, refusing any result outside `base` (a model id or file name never
    climbs out of the server's model directory)."""
    path = os.path.normpath(os.path.join(base, *names))
    root = os.path.normpath(base)
    if path != root and not path.startswith(root + os.sep):
        raise InvalidModel(f"path {os.path.join(*names)!r} escapes {base}")
    return path


def largest_version_dir(model_dir: str) -> str | None:
    """The largest numeric subdirectory, if every subdirectory is numeric (Triton/OVMS version
    dirs); None when there is none or any subdirectory has another name."""
    best: tuple[int, str] | None = None
    for entry in os.scandir(model_dir):
        if not entry.is_dir():
            continue
        if not entry.name.isdigit():
            return None
        n = int(entry.name)
        if n > 0 and (best is None or n > best[0]):
            best = (n, entry.name)
    return best[1] if best else None


def remove_path(path: str) -> None:
    """Remove a file, symlink (not its target) or directory tree; missing is fine."""
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        pass


def fresh_dir(path: str) -> str:
    remove_path(path)
    os.makedirs(path)
    return path


def symlink(target: str, link: str) -> None:
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(target, link)


def write_atomic(path: str, data: str | bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def require_exists(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as e:
        raise InvalidModel(f"model path {path} does not exist or cannot be read: {e.strerror}") from None

"""pvc: the model is already on a mounted volume; link it in, copy nothing."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.paths import is_within


class PvcProvider:
    """`/pvc_mounts/<name>/<path>` must exist and stay inside the claim's mount, symlinks
    included; it is symlinked to `dest`."""

    def __init__(self, mounts_root: str = "/pvc_mounts") -> None:
        self.mounts_root = mounts_root

    async def fetch(self, config: dict[str, Any], remote_path: str, dest: str) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise PullInputError("pvc storage config needs 'name' (the PVC claim name)")
        if "/" in name or name in (".", ".."):
            raise PullInputError(f"invalid PVC name {name!r}")
        await asyncio.to_thread(self._link, name, remote_path, dest)

    def _link(self, name: str, remote_path: str, dest: str) -> None:
        mount = os.path.join(self.mounts_root, name)
        if not os.path.isdir(mount):
            raise PullError(f"PVC {name!r} is not mounted at {mount}")
        source = os.path.join(mount, remote_path.lstrip("/"))
        if not is_within(source, mount):
            raise PullInputError(f"model path {remote_path!r} escapes the PVC {name!r}")
        if not os.path.exists(source):
            raise PullError(f"model path {remote_path!r} does not exist in PVC {name!r}")
        escaping = _escaping_link(source, mount)
        if escaping:
            raise PullInputError(f"{escaping!r} in PVC {name!r} links outside the volume")
        os.symlink(os.path.realpath(source), dest)

    async def close(self) -> None:
        pass


def _escaping_link(path: str, mount: str) -> str | None:
    """The first symlink under `path` that resolves outside `mount`, if any."""
    if not os.path.isdir(path):
        return None
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) and not is_within(p, mount):
                return os.path.relpath(p, mount)
    return None

"""PEM material from storage configs (certificate contents, not paths) as files for the
libraries that only take paths. Files live in a private temp dir removed on close."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from modelmesh.storage.errors import PullInputError


class PemFiles:
    def __init__(self) -> None:
        self._dir: str | None = None

    def path_for(self, pem: str, what: str) -> str:
        if "-----BEGIN" not in pem:
            raise PullInputError(f"storage config field {what!r} must hold PEM contents")
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="modelmesh-pem-")
        path = os.path.join(self._dir, hashlib.sha256(pem.encode()).hexdigest()[:16] + ".pem")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
        return path

    def close(self) -> None:
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

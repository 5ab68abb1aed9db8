"""gcp-storage-emulator (a GCS JSON-API emulator, PyPI), in its own venv made by
scripts/install-gcs-emulator.sh."""

from __future__ import annotations

from pathlib import Path

from harness import tools
from harness.process import ManagedProcess, free_port, port_open


def gcs_emulator_bin() -> str:
    path = tools.CACHE_DIR / "venvs" / "gcp-storage-emulator-2026.7.19" / "bin" / "gcp-storage-emulator"
    if not path.exists():
        tools._missing("gcp-storage-emulator", "scripts/install-gcs-emulator.sh")
    return str(path)


class GcsEmulator:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulator:
        cmd = [gcs_emulator_bin(), "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory", "-q"]
        self.proc = ManagedProcess("gcs-emulator", cmd, self.workdir / "gcs.log", cwd=self.workdir)
        self.proc.start(lambda: port_open(self.port), timeout=60)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

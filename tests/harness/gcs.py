"""gcp-storage-emulator (a GCS JSON-API emulator, PyPI), in its own venv made by
scripts/install-gcs-emulator.sh."""

from __future__ import annotations

from harness import tools
from harness.process import ManagedProcess, port_open
from harness.services import SinglePortServer


def gcs_emulator_bin() -> str:
    path = tools.CACHE_DIR / "venvs" / "gcp-storage-emulator-2026.7.19" / "bin" / "gcp-storage-emulator"
    if not path.exists():
        tools._missing("gcp-storage-emulator", "scripts/install-gcs-emulator.sh")
    return str(path)


class GcsEmulator(SinglePortServer):
    def start(self) -> GcsEmulator:
        cmd = [gcs_emulator_bin(), "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory", "-q"]
        self.proc = ManagedProcess("gcs-emulator", cmd, self.workdir / "gcs.log", cwd=self.workdir)
        self.proc.start(lambda: port_open(self.port), timeout=60)
        return self

"""Azurite, Microsoft's Azure Blob emulator (npm), installed by scripts/install-azurite.sh."""

from __future__ import annotations

from pathlib import Path

from harness import tools
from harness.process import ManagedProcess, free_port, port_open


def azurite_blob_bin() -> str:
    path = tools.CACHE_DIR / "azurite-3.35.0" / "node_modules" / ".bin" / "azurite-blob"
    if not path.exists():
        tools._missing("azurite 3.35.0", "scripts/install-azurite.sh")
    return str(path)


class AzuriteServer:
    # Azurite's fixed development account (public, documented by Microsoft).
    ACCOUNT = "devstoreaccount1"
    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def __init__(self, workdir: Path, tls: tuple[Path, Path] | None = None) -> None:
        """`tls` = (cert, key): serve https and accept OAuth bearer tokens (`--oauth basic`:
        issuer, audience and lifetime are checked, the signature is not)."""
        self.workdir = workdir
        self.tls = tls
        self.port = free_port()
        self.proc: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{self.ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol={'https' if self.tls else 'http'};AccountName={self.ACCOUNT};AccountKey={self.KEY};"
                f"BlobEndpoint={self.endpoint};")

    def start(self) -> AzuriteServer:
        cmd = [azurite_blob_bin(), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
               "--location", self.workdir / "data", "--silent", "--disableTelemetry", "--skipApiVersionCheck",
               "--loose"]
        if self.tls:
            cmd += ["--cert", self.tls[0], "--key", self.tls[1], "--oauth", "basic"]
        self.proc = ManagedProcess("azurite", cmd, self.workdir / "azurite.log")
        self.proc.start(lambda: port_open(self.port), timeout=60)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

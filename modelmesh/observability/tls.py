"""Server TLS contexts, including a throwaway self-signed certificate when none is given
(the reference serves metrics over https by default with a generated certificate)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path


def self_signed_pair(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """Create a self-signed cert + key in `directory` with the openssl CLI."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found: needed to generate a self-signed certificate")
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={common_name}",
            "-addext", f"subjectAltName=DNS:{common_name},IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_ssl_context(cert_path: str = "", key_path: str = "", client_auth: str = "none",
                       client_roots: bytes | None = None) -> ssl.SSLContext:
    """`client_auth` optional/require: clients may/must present a certificate issued by
    `client_roots` (PEM); a presented certificate is always verified."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if cert_path and key_path:
        ctx.load_cert_chain(cert_path, key_path)
        if client_auth in ("optional", "require") and client_roots:
            ctx.load_verify_locations(cadata=client_roots.decode())
            ctx.verify_mode = ssl.CERT_REQUIRED if client_auth == "require" else ssl.CERT_OPTIONAL
        return ctx
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed_pair(Path(tmp))
        ctx.load_cert_chain(str(cert), str(key))
    return ctx

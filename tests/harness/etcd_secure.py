"""etcd with TLS (client certificates required) and/or user/password auth, for tests of
secure connections. Certificates are generated with the openssl CLI in the work dir."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import grpc
from aetcd import rpc

from harness.services import EtcdServer, _http_ok


def _openssl(*args: object, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, cwd=cwd)


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server cert for 127.0.0.1/localhost and a client cert, all signed by the CA."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
             "-out", "ca.crt", "-subj", "/CN=test-etcd-ca", cwd=directory)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=etcd-{name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=directory)
    return {n: directory / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class TlsEtcdServer(EtcdServer):
    """etcd serving clients over https only, requiring a client certificate from the CA."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.pki = make_pki(workdir / "pki")

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    def command(self) -> list:
        return [*super().command(), "--cert-file", self.pki["server.crt"], "--key-file", self.pki["server.key"],
                "--trusted-ca-file", self.pki["ca.crt"], "--client-cert-auth"]

    def healthy(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki["ca.crt"]))
        ctx.load_cert_chain(str(self.pki["client.crt"]), str(self.pki["client.key"]))
        return _http_ok(f"{self.endpoint}/health", context=ctx)


async def enable_auth(endpoint_port: int, root_password: str, user: str = "", password: str = "",
                      prefix: str = "") -> None:
    """Turn on etcd auth (root user + optional user with read-write on `prefix`), speaking
    the etcd API directly (no etcdctl needed)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{endpoint_port}") as channel:
        auth = rpc.AuthStub(channel)
        await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=root_password))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        if user:
            await auth.RoleAdd(rpc.AuthRoleAddRequest(name=f"{user}-rw"))
            end = bytearray(prefix.encode())
            end[-1] += 1
            perm = rpc.Permission(permType=rpc.Permission.READWRITE, key=prefix.encode(), range_end=bytes(end))
            await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name=f"{user}-rw", perm=perm))
            await auth.UserAdd(rpc.AuthUserAddRequest(name=user, password=password))
            await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=user, role=f"{user}-rw"))
        await auth.AuthEnable(rpc.AuthEnableRequest())

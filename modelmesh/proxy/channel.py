"""The one long-lived gRPC channel from the proxy to the mesh (or a runtime), with TLS options.

gRPC Python cannot switch certificate verification off. For REST_PROXY_SKIP_VERIFY the
proxy instead fetches the server's certificate once and trusts exactly that certificate
under the name it carries (pinning): encrypted, and no CA needed, like the reference's
InsecureSkipVerify for the common self-signed case. Because the server may start after
the proxy, the channel is opened lazily on first use. Without a CA, a proxy that holds a
certificate (MM_TLS_KEY_CERT_PATH) trusts that certificate on the gRPC side: the mesh beside
it serves the same one.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from modelmesh.config.tls import pem_certificate_name
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.proxy.channel")


@dataclass(frozen=True)
class ChannelSpec:
    host: str
    port: int
    max_msg_size: int
    use_tls: bool = False
    skip_verify: bool = False
    ca_path: str = ""
    server_name: str = ""
    client_cert_path: str = ""
    client_key_path: str = ""

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class ChannelUnavailable(RuntimeError):
    """The channel could not be opened (e.g. the TLS server is not up yet to fetch its certificate)."""


class GrpcChannel:
    def __init__(self, spec: ChannelSpec) -> None:
        self.spec = spec
        self._channel: grpc.aio.Channel | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> grpc.aio.Channel:
        if self._channel is None:
            async with self._lock:
                if self._channel is None:
                    self._channel = await self._open()
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _open(self) -> grpc.aio.Channel:
        spec = self.spec
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", spec.max_msg_size),
            ("grpc.max_send_message_length", spec.max_msg_size),
        ]
        if not spec.use_tls:
            return grpc.aio.insecure_channel(spec.target, options=options)
        client_key = _read(spec.client_key_path) if spec.client_cert_path and spec.client_key_path else None
        client_cert = _read(spec.client_cert_path) if client_key else None
        if spec.skip_verify:
            root, name = await self._pinned_certificate()
        elif spec.ca_path:
            root, name = _read(spec.ca_path), spec.server_name
        elif client_cert:
            # In a runtime pod the mesh beside the proxy serves the very certificate the proxy
            # holds (the controller mounts one secret into both): trust exactly that one.
            root, name = client_cert, spec.server_name or pem_certificate_name(client_cert)
        else:
            root, name = None, spec.server_name
        if name:
            options.append(("grpc.ssl_target_name_override", name))
        creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=client_key,
                                             certificate_chain=client_cert)
        log.info("grpc channel", target=spec.target, tls=True, skip_verify=spec.skip_verify,
                 server_name=name or spec.host)
        return grpc.aio.secure_channel(spec.target, creds, options=options)

    async def _pinned_certificate(self) -> tuple[bytes, str]:
        try:
            pem = await asyncio.to_thread(ssl.get_server_certificate, (self.spec.host, self.spec.port), timeout=5)
        except OSError as e:
            raise ChannelUnavailable(f"cannot fetch the TLS certificate of {self.spec.target}: {e}") from None
        return pem.encode(), self.spec.server_name or pem_certificate_name(pem)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()

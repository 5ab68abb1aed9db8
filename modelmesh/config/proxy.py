"""Settings of the REST proxy (`modelmesh runtime --role rest-proxy`)."""

from __future__ import annotations

from dataclasses import dataclass

from modelmesh.config.common import LogSettings
from modelmesh.config.settings import parse_bool, port, positive, setting
from modelmesh.config.tls import ServerTls, load_server_tls, parse_client_auth, read_certificates


@dataclass(frozen=True)
class RestProxySettings(LogSettings):
    listen_port: int = setting("REST_PROXY_LISTEN_PORT", 8008, "HTTP port of the V2 REST API", check=port)
    grpc_host: str = setting("REST_PROXY_GRPC_HOST", "127.0.0.1", "host of the mesh's gRPC port")
    grpc_port: int = setting("REST_PROXY_GRPC_PORT", 8033, "the mesh's gRPC port", check=port)
    use_tls: bool = setting("REST_PROXY_USE_TLS", False, "TLS to the gRPC side", parse=parse_bool)
    grpc_max_msg_size: int = setting(
        "REST_PROXY_GRPC_MAX_MSG_SIZE_BYTES", 16 * 1024 * 1024, "max gRPC message size (bytes)", check=positive
    )
    skip_verify: bool = setting("REST_PROXY_SKIP_VERIFY", False, "do not verify the gRPC side's certificate", parse=parse_bool)
    access_log: bool = setting("REST_PROXY_ACCESS_LOG", False, "log one line per request", parse=parse_bool)
    listen_host: str = setting("REST_PROXY_LISTEN_HOST", "0.0.0.0", "address the V2 REST API listens on")
    metrics_port: int = setting(
        "REST_PROXY_METRICS_PORT", 0, "port of the proxy's own Prometheus /metrics (0 = off)", check=port
    )
    max_request_bytes: int = setting(
        "REST_PROXY_MAX_REQUEST_BYTES", 64 * 1024 * 1024,
        "largest HTTP request body accepted (413 above it); JSON is ~4x its tensor bytes", check=positive,
    )
    grpc_ca_path: str = setting(
        "REST_PROXY_GRPC_CA_PATH", "", "CA bundle (PEM) to verify the gRPC side; empty = system roots"
    )
    grpc_server_name: str = setting(
        "REST_PROXY_GRPC_SERVER_NAME", "", "name expected in the gRPC side's certificate (default: the host)"
    )
    tls_cert_path: str = setting(
        "MM_TLS_KEY_CERT_PATH", "", "TLS certificate (PEM): serve HTTPS, and present it to the gRPC side"
    )
    tls_key_path: str = setting("MM_TLS_PRIVATE_KEY_PATH", "", "TLS private key (PEM) of MM_TLS_KEY_CERT_PATH")
    tls_client_auth: str = setting("MM_TLS_CLIENT_AUTH", "none",
                                   "HTTPS clients: none | optional | require a certificate", parse=parse_client_auth)
    tls_trust_cert_path: str = setting(
        "MM_TLS_TRUST_CERT_PATH", "", "PEM files, comma separated: who may present client certificates")
    # Ours (the reference's Go proxy uses every core by itself): one Python process serves one core.
    workers: int = setting(
        "REST_PROXY_WORKERS", 1,
        "processes serving the REST port together (SO_REUSEPORT); >1 lets the proxy use more than one core; "
        "/metrics then counts the first process's requests only",
        check=positive,
    )

    def https_tls(self) -> ServerTls | None:
        """TLS of the HTTP side (None: plain HTTP); reads and checks the files."""
        return load_server_tls(self.tls_cert_path, self.tls_key_path, self.tls_client_auth, self.tls_trust_cert_path)

    def validate(self) -> None:
        self.https_tls()
        if self.grpc_ca_path:
            read_certificates(self.grpc_ca_path, "REST_PROXY_GRPC_CA_PATH")

"""Settings of a mesh instance (`modelmesh runtime`): the launch contract in mesh.md."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit
from dataclasses import dataclass

from modelmesh.config.common import LogSettings, MetricsSpec
from modelmesh.config.settings import (
    non_negative,
    parse_bool,
    parse_csv,
    port,
    positive,
    setting,
)
from modelmesh.config.tls import ServerTls, TlsSettingNames, load_server_tls, parse_client_auth

_TLS_NAMES = TlsSettingNames(passphrase="MM_TLS_PRIVATE_KEY_PASSPHRASE")


def _no_slash_or_space(value: str) -> str | None:
    return "must not contain '/' or spaces" if ("/" in value or " " in value) else None


def parse_payload_processors(raw: str) -> tuple[str, ...]:
    uris = tuple(raw.split())
    for uri in uris:
        parts = urlsplit(uri)
        if not (parts.scheme == "logger" or (parts.scheme in ("http", "https") and parts.netloc)):
            raise ValueError(f"unsupported processor {uri!r} (logger://, http(s)://host/path)")
    return uris


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class MeshSettings(LogSettings):
    service_name: str = setting("MM_SERVICE_NAME", "modelmesh-serving", "instances with the same name form one mesh")
    grpc_port: int = setting("MM_SVC_GRPC_PORT", 8033, "external gRPC port: mesh API + inference", check=port)
    internal_grpc_port: int = setting(
        "MM_INTERNAL_GRPC_PORT", 8080, "peer-to-peer forwarding port", check=port
    )
    probe_port: int = setting("MM_PROBE_PORT", 8089, "HTTP GET /ready and /live", check=port)
    prestop_port: int = setting(
        "MM_PRESTOP_WAIT_PORT", 8090, "HTTP GET /prestop, held until the mesh is about to exit (the preStop of "
        "the pod's other containers); POST /stop from the pod itself starts the shutdown", check=port)
    metrics: MetricsSpec = setting(
        "MM_METRICS", MetricsSpec(), "prometheus:port=<n>;scheme=<http|https>, or none", parse=MetricsSpec.parse
    )
    kv_store: str = setting(
        "KV_STORE", "", "etcd:<etcd_connection JSON path> or etcd:http://host:port[,...]; empty = embedded store"
    )
    kv_prefix: str = setting(
        "MM_KVSTORE_PREFIX", "tas-runtime", "key prefix segment (the controller sets mm)", check=_no_slash_or_space
    )
    runtime_grpc_port: int = setting("INTERNAL_GRPC_PORT", 8085, "ModelRuntime SPI port of the adapter/runtime", check=port)
    runtime_grpc_socket: str = setting("INTERNAL_GRPC_SOCKET_PATH", "", "ModelRuntime SPI unix socket (wins over the port)")
    serving_grpc_port: int | None = setting(
        "INTERNAL_SERVING_GRPC_PORT", None, "where inference is forwarded (default: the SPI endpoint)", check=port
    )
    serving_grpc_socket: str = setting("INTERNAL_SERVING_GRPC_SOCKET_PATH", "", "inference unix socket")
    pod_ip: str = setting("WKUBE_POD_IPADDR", "127.0.0.1", "address peers reach this instance on")
    listen_host: str = setting(
        "MM_LISTEN_HOST", "0.0.0.0", "address the gRPC, probe, metrics and preStop ports listen on (ours; a pod listens "
        "on all, `modelmesh local` on --host)")
    instance_id: str = setting(
        "WKUBE_POD_NAME", default_factory=_default_instance_id, help="instance id (default: <host>-<pid>)"
    )
    location: str = setting("MM_LOCATION", "", "placement: location (e.g. node)")
    zone: str = setting("MM_ZONE", "", "placement: zone")
    labels: tuple[str, ...] = setting("MM_LABELS", (), "instance labels, comma separated", parse=parse_csv)
    type_constraints_path: str = setting("MM_TYPE_CONSTRAINTS_PATH", "", "type constraints JSON file")
    type_constraints: str = setting("MM_TYPE_CONSTRAINTS", "", "type constraints JSON (inline)")
    dataplane_config_path: str = setting("MM_DATAPLANE_CONFIG_PATH", "", "data-plane API config JSON file")
    dataplane_config: str = setting("MM_DATAPLANE_CONFIG", "", "data-plane API config JSON (inline)")
    min_churn_age_ms: int = setting(
        "MM_MIN_CHURN_AGE_MS", 30000, "a model used less than this ago is never evicted", check=non_negative
    )
    janitor_freq_secs: float = setting("MM_JANITOR_FREQ_SECS", 360.0, "janitor period", check=positive)
    shutdown_timeout_ms: int = setting(
        "SHUTDOWN_TIMEOUT_MS", 60000, "graceful shutdown budget (hand-off of models in use)", check=non_negative
    )
    load_failure_expiry_ms: int = setting(
        "MM_LOAD_FAILURE_EXPIRY_TIME_MS", 900000, "how long a load failure is remembered", check=non_negative
    )
    multi_parallelism: int = setting(
        "MM_MULTI_PARALLELISM", 4, "fan-out of multi-model requests", check=positive
    )
    scaleup_rpm_threshold: int = setting(
        "MM_SCALEUP_RPM_THRESHOLD", 2000, "requests/min that earn a model a second copy", check=positive
    )
    max_inflight_per_copy: int = setting(
        "MM_MAX_INFLIGHT_PER_MODEL_COPY", 20, "in-flight requests per copy before another is added", check=positive
    )
    default_vmodel_owner: str = setting("MM_DEFAULT_VMODEL_OWNER", "", "owner used when a vmodel request has none")
    max_msg_size: int = setting(
        "MM_SVC_GRPC_MAX_MSG_SIZE", 16 * 1024 * 1024, "max gRPC message size (bytes)", check=positive
    )
    log_each_invoke: bool = setting("MM_LOG_EACH_INVOKE", False, "log every inference call", parse=parse_bool)
    payload_processors: tuple[str, ...] = setting(
        "MM_PAYLOAD_PROCESSORS", (), "payload processors, space separated: logger:// or http(s)://host/path",
        parse=parse_payload_processors)
    lease_ttl_s: int = setting("MM_LEASE_TTL_SECS", 10, "instance lease TTL (ours)", check=positive)
    runtime_poll_s: float = setting("MM_RUNTIME_POLL_SECS", 2.0, "runtimeStatus poll period at start (ours)",
                                    check=positive)
    runtime_startup_timeout_s: float = setting(
        "MM_RUNTIME_STARTUP_TIMEOUT_SECS", 180.0, "how long to wait for the runtime to be READY (ours)", check=positive)
    reap_delay_ms: int = setting(
        "MM_REAP_DELAY_MS", 600000, "departed instances stay in model records this long (ours)", check=non_negative)
    tls_key_cert_path: str = setting(
        "MM_TLS_KEY_CERT_PATH", "", "TLS certificate (PEM) of the external and the internal port, shared by peers")
    tls_private_key_path: str = setting("MM_TLS_PRIVATE_KEY_PATH", "", "TLS private key (PEM)")
    tls_private_key_passphrase: str = setting(
        "MM_TLS_PRIVATE_KEY_PASSPHRASE", "", "passphrase of an encrypted MM_TLS_PRIVATE_KEY_PATH (PKCS#8 or OpenSSL "
        "PEM); decrypted in memory at start", secret=True)
    tls_client_auth: str = setting("MM_TLS_CLIENT_AUTH", "none", "none | optional | require (any case)",
                                   parse=parse_client_auth)
    tls_trust_cert_path: str = setting(
        "MM_TLS_TRUST_CERT_PATH", "", "PEM files, comma separated: who may present client certificates (peers too)")

    def server_tls(self) -> ServerTls | None:
        """The TLS of both ports (None: plaintext); reads and checks the files."""
        return load_server_tls(self.tls_key_cert_path, self.tls_private_key_path, self.tls_client_auth,
                               self.tls_trust_cert_path, _TLS_NAMES, self.tls_private_key_passphrase)

    def validate(self) -> None:
        self.server_tls()


@dataclass(frozen=True)
class MeshStopSettings(LogSettings):
    """`modelmesh runtime stop`: the mesh container's preStop (run with that container's env)."""

    prestop_port: int = setting("MM_PRESTOP_WAIT_PORT", 8090, "the mesh's preStop port", check=port)

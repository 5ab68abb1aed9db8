"""Settings of `modelmesh local`, the all-in-one mode for one machine."""

from __future__ import annotations

from dataclasses import dataclass

from modelmesh.config.common import LogSettings
from modelmesh.config.settings import port, setting


@dataclass(frozen=True)
class LocalSettings(LogSettings):
    config_dir: str = setting("MODELMESH_LOCAL_DIR", "./modelmesh-local", "watched dir of ServingRuntime / InferenceService YAML")
    state_dir: str = setting("MODELMESH_STATE_DIR", "", "embedded store + model files (default: <config_dir>/.state)")
    kv_store: str = setting("KV_STORE", "", "etcd:... to use etcd instead of the embedded store")
    grpc_port: int = setting("MM_SVC_GRPC_PORT", 8033, "gRPC: mesh API + inference", check=port)
    rest_port: int = setting("REST_PROXY_LISTEN_PORT", 8008, "V2 REST", check=port)
    metrics_port: int = setting("METRICS_PORT", 2112, "Prometheus metrics (http)", check=port)

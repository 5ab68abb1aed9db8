"""Settings of `modelmesh local`, the all-in-one mode for one machine (local.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelmesh.config.common import LogSettings
from modelmesh.config.settings import parse_csv, port, positive, setting


def default_state_dir() -> str:
    """Per user: $XDG_STATE_HOME/modelmesh, else ~/.local/state/modelmesh."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "modelmesh")


@dataclass(frozen=True)
class LocalSettings(LogSettings):
    config_dir: str = setting("MODELMESH_LOCAL_DIR", "./modelmesh-local",
                              "watched dir of InferenceService / Predictor YAML")
    state_dir: str = setting("MODELMESH_STATE_DIR", "",
                             "embedded store, pulled models and logs (default: ~/.local/state/modelmesh)")
    host: str = setting("MODELMESH_HOST", "127.0.0.1", "address the gRPC, REST and metrics ports listen on")
    grpc_port: int = setting("MM_SVC_GRPC_PORT", 8033, "gRPC: mesh API + KServe V2 inference", check=port)
    rest_port: int = setting("REST_PROXY_LISTEN_PORT", 8008, "KServe V2 REST", check=port)
    metrics_port: int = setting("METRICS_PORT", 2112, "Prometheus metrics (http)", check=port)
    instances: int = setting("MODELMESH_INSTANCES", 1, "runtime instances per runtime (model server + adapter "
                             "+ mesh each)", check=positive)
    kv_store: str = setting("KV_STORE", "", "etcd:http://host:port (or etcd:<etcd_connection JSON>) instead of "
                            "the embedded store")
    storage_config: str = setting("STORAGE_CONFIG_DIR", "", "storage-config secret keys as files "
                                  "(default: <config-dir>/storage-config)")
    runtimes: tuple[str, ...] = setting("MODELMESH_RUNTIMES", ("auto",), "built-in runtimes to run: auto "
                                        "(MLServer, and Triton when installed), or mlserver,triton",
                                        parse=parse_csv)
    model_memory_bytes: int = setting("MODELMESH_MODEL_MEMORY_BYTES", 1024**3,
                                      "memory for models per runtime instance (its LRU cache size)", check=positive)
    shutdown_timeout: float = setting("MODELMESH_SHUTDOWN_TIMEOUT_SECS", 10.0, "graceful stop budget",
                                        check=positive)

    @property
    def effective_state_dir(self) -> str:
        return self.state_dir or default_state_dir()

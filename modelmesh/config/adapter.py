"""Settings of the built-in adapter + puller (`modelmesh runtime --role adapter|puller`)."""

from __future__ import annotations

from dataclasses import dataclass

from modelmesh.config.common import LogSettings
from modelmesh.config.settings import non_negative, one_of, parse_bool, port, positive, setting


@dataclass(frozen=True)
class AdapterSettings(LogSettings):
    server_type: str = setting(
        "SERVER_TYPE", "mlserver", "model server driven by the adapter",
        parse=str.lower, check=one_of("triton", "mlserver", "ovms", "torchserve"),
    )
    adapter_port: int = setting("ADAPTER_PORT", 8085, "port the ModelRuntime SPI is served on", check=port)
    runtime_port: int = setting("RUNTIME_PORT", 8001, "management port of the model server", check=port)
    runtime_data_endpoint: str = setting("RUNTIME_DATA_ENDPOINT", "", "data endpoint of the model server (port:N)")
    container_mem_req_bytes: int = setting(
        "CONTAINER_MEM_REQ_BYTES", help="memory request of the model server container", check=positive
    )
    mem_buffer_bytes: int = setting(
        "MEM_BUFFER_BYTES", 256 * 1024 * 1024, "memory kept free below the request", check=non_negative
    )
    loading_concurrency: int = setting("LOADING_CONCURRENCY", 1, "concurrent loads", check=positive)
    loadtime_timeout_ms: int = setting("LOADTIME_TIMEOUT", 30000, "model load timeout (ms)", check=positive)
    default_model_size: int = setting("DEFAULT_MODELSIZE", 1000000, "size assumed when unknown (bytes)", check=positive)
    modelsize_multiplier: float | None = setting(
        "MODELSIZE_MULTIPLIER", None, "memory per byte of model on disk (default 1.25; TorchServe 2.75)",
        check=positive,
    )
    runtime_version: str = setting("RUNTIME_VERSION", "", "version reported in runtimeStatus")
    limit_per_model_concurrency: int = setting(
        "LIMIT_PER_MODEL_CONCURRENCY", 0, "max concurrent requests per model (0 = unlimited)", check=non_negative
    )
    root_model_dir: str = setting("ROOT_MODEL_DIR", "/models", "where model files are laid out")
    use_embedded_puller: bool = setting("USE_EMBEDDED_PULLER", True, "pull from storage before loading", parse=parse_bool)
    storage_config_dir: str = setting("STORAGE_CONFIG_DIR", "/storage-config", "mounted storage-config secret")
    pvc_mounts_root: str = setting("PVC_MOUNTS_ROOT", "/pvc_mounts", "where PVCs are mounted (<root>/<claim>)")
    pull_concurrency: int = setting("PULL_CONCURRENCY", 16, "storage requests in flight per pull", check=positive)
    pull_part_size_bytes: int = setting(
        "PULL_PART_SIZE_BYTES", 8 * 1024 * 1024, "objects larger than this download as parallel ranged parts "
        "(0 = one stream per object)", check=non_negative,
    )
    pull_retry_attempts: int = setting(
        "PULL_RETRY_ATTEMPTS", 4, "tries per storage request on transient errors (5xx, timeouts, resets)", check=positive
    )
    # Standalone puller role (custom runtimes): serves the SPI here, forwards to the runtime.
    puller_port: int = setting("PULLER_PORT", 8086, "port the standalone puller serves the SPI on", check=port)
    model_server_endpoint: str = setting(
        "MODEL_SERVER_ENDPOINT", "", "runtime SPI endpoint the puller forwards to: port:N or unix:/path "
        "(default port:RUNTIME_PORT)",
    )
    # Built-in adapter: where the model server and the SPI listen; server-specific knobs.
    runtime_host: str = setting("RUNTIME_HOST", "127.0.0.1", "host of the model server's management API")
    adapter_host: str = setting("ADAPTER_HOST", "127.0.0.1", "address the ModelRuntime SPI binds to")
    model_config_file: str = setting(
        "MODEL_CONFIG_FILE", "", "OVMS config JSON the adapter writes (default <ROOT_MODEL_DIR>/model_config_list.json)"
    )
    batch_wait_ms: int = setting("BATCH_WAIT_TIME_MIN_MS", 100, "OVMS: ms to gather loads into one config reload",
                                 check=non_negative)
    ovms_reload_timeout_ms: int = setting("OVMS_RELOAD_TIMEOUT_MS", 30000, "OVMS: config reload timeout (ms)",
                                          check=positive)
    request_batch_size: int = setting("REQUEST_BATCH_SIZE", 0, "TorchServe: inference batch size (0 = its default)",
                                      check=non_negative)
    max_batch_delay_secs: int = setting("MAX_BATCH_DELAY_SECS", 0, "TorchServe: max batch delay (0 = its default)",
                                        check=non_negative)

    @property
    def size_multiplier(self) -> float:
        """The setting, else the server type's default (TorchServe models take far more
        memory than their archive size, as the reference's adapter assumes)."""
        if self.modelsize_multiplier is not None:
            return self.modelsize_multiplier
        return 2.75 if self.server_type == "torchserve" else 1.25

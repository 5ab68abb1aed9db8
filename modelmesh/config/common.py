"""Settings shared by every mode, and the small value types several modes parse."""

from __future__ import annotations

from dataclasses import dataclass

from modelmesh.config.settings import one_of, parse_bool, setting


@dataclass(frozen=True)
class LogSettings:
    log_level: str = setting(
        "LOG_LEVEL", "info", "log level", parse=str.lower, check=one_of("debug", "info", "warning", "error")
    )
    log_format: str = setting(
        "LOG_FORMAT", "json", "json (one JSON object per line) or console (for people)",
        parse=str.lower, check=one_of("json", "console"),
    )
    dev_mode_logging: bool = setting(
        "DEV_MODE_LOGGING", False, "human-readable console logs at debug level", parse=parse_bool
    )

    @property
    def effective_format(self) -> str:
        return "console" if self.dev_mode_logging else self.log_format

    @property
    def effective_level(self) -> str:
        return "debug" if self.dev_mode_logging else self.log_level


@dataclass(frozen=True)
class MetricsSpec:
    """`MM_METRICS` value: `prometheus:port=2112;scheme=https` (empty/`none` disables)."""

    enabled: bool = True
    port: int = 2112
    scheme: str = "https"
    per_model_metrics: bool = False  # request and model histograms also labelled modelId / vModelId
    fq_names: bool = False  # method label: the full gRPC name, not just the method

    @classmethod
    def parse(cls, raw: str) -> "MetricsSpec":
        raw = raw.strip()
        if raw in ("", "none", "disabled"):
            return cls(enabled=False)
        kind, _, params = raw.partition(":")
        if kind != "prometheus":
            raise ValueError("expected prometheus:port=<n>;scheme=<http|https>")
        port, scheme = 2112, "https"
        flags = {"per_model_metrics": False, "fq_names": False}
        for item in filter(None, (p.strip() for p in params.split(";"))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"expected key=value, got {item!r}")
            if key == "port":
                if not value.isdigit() or not 0 <= int(value) <= 65535:
                    raise ValueError(f"bad port {value!r}")
                port = int(value)
            elif key == "scheme":
                if value not in ("http", "https"):
                    raise ValueError(f"scheme must be http or https, got {value!r}")
                scheme = value
            elif key in flags:
                flags[key] = value.lower() == "true"  # as the reference reads them
            elif key in ("legacy", "mem_detail"):
                continue  # accepted for compatibility with the reference's options
            else:
                raise ValueError(f"unknown option {key!r}")
        return cls(enabled=True, port=port, scheme=scheme, **flags)

    def __str__(self) -> str:
        return f"prometheus:port={self.port};scheme={self.scheme}" if self.enabled else "none"

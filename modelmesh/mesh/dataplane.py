"""Data-plane API config (MM_DATAPLANE_CONFIG[_PATH]): per gRPC method, where the model id
lives in the request, and whether other methods may pass."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelmesh.config.json_object import parse_json_object

from modelmesh.mesh.constraints import inline_or_file


@dataclass(frozen=True, slots=True)
class RpcConfig:
    id_extraction_path: tuple[int, ...] = ()
    vmodel_id: bool = False


@dataclass(frozen=True)
class DataPlaneConfig:
    rpc_configs: dict[str, RpcConfig] = field(default_factory=dict)
    allow_other_rpcs: bool = True
    configured: bool = False

    @classmethod
    def parse(cls, raw: bytes | str) -> "DataPlaneConfig":
        data = parse_json_object(raw, "data-plane config")
        if not data and not (raw and raw.strip()):
            return cls()  # no config at all: every method the runtime allows is routed
        configs = {}
        for method, spec in (data.get("rpcConfigs") or {}).items():
            path = spec.get("idExtractionPath") or ()
            if not all(isinstance(n, int) and n > 0 for n in path):
                raise ValueError(f"idExtractionPath of {method} must be positive field numbers")
            configs[method.lstrip("/")] = RpcConfig(tuple(path), bool(spec.get("vModelId", False)))
        # As the reference: once a config is given, RPCs it does not list are refused unless it says otherwise.
        return cls(configs, bool(data.get("allowOtherRpcs", False)), True)

    @classmethod
    def load(cls, inline: str = "", path: str = "") -> "DataPlaneConfig":
        return cls.parse(inline_or_file(inline, path))

    def for_method(self, method: str) -> RpcConfig | None:
        """`method` as gRPC names it: `/pkg.Service/Method`."""
        return self.rpc_configs.get(method[1:] if method.startswith("/") else method)

    def allows(self, method: str) -> bool:
        return not self.configured or self.allow_other_rpcs or self.for_method(method) is not None

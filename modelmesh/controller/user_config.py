"""The user ConfigMap `model-serving-config` (key config.yaml) over the defaults.

The defaults are the built-in DEFAULTS with the mounted ConfigMap `model-serving-config-defaults`
(file config-defaults.yaml) over them, as the reference reads it: built-in < defaults file <
user ConfigMap. Keys are case-insensitive in both files (as the reference's viper). A value of
the wrong type or out of range raises ConfigError naming the key; for the user ConfigMap the
caller keeps the last good config, a broken defaults file stops the controller at start.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelmesh import __version__
from modelmesh.config.controller import DEFAULTS_FILE

CONFIG_MAP_NAME = "model-serving-config"
CONFIG_KEY = "config.yaml"

_IMAGE = {"name": "modelmesh", "tag": __version__, "digest": "", "command": []}

DEFAULTS: dict[str, Any] = {
    "podsPerRuntime": 2,
    "headlessService": True,
    "inferenceServiceName": "modelmesh-serving",
    "inferenceServicePort": 8033,
    "storageSecretName": "storage-config",
    "serviceAccountName": "",
    "grpcMaxMessageSizeBytes": 16777216,
    "enableAccessLogging": False,
    "allowAnyPVC": False,
    "metrics": {"enabled": True, "port": 2112, "scheme": "https", "disablePrometheusOperatorSupport": False},
    "scaleToZero": {"enabled": True, "gracePeriodSeconds": 60},
    "restProxy": {
        "enabled": True, "port": 8008, "skipVerify": False,
        "image": {**_IMAGE, "command": ["modelmesh", "runtime", "rest-proxy"]},
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    },
    "modelMeshImage": {**_IMAGE, "command": ["modelmesh", "runtime", "mesh"]},
    "modelMeshResources": {"requests": {"cpu": "300m", "memory": "448Mi"}, "limits": {"cpu": "3", "memory": "448Mi"}},
    "storageHelperImage": {**_IMAGE, "command": ["modelmesh", "runtime"]},
    "storageHelperResources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
    "builtInServerTypes": ["triton", "mlserver", "ovms", "torchserve"],
    "payloadProcessors": [],
    "runtimePodLabels": {},
    "runtimePodAnnotations": {},
    "imagePullSecrets": [],
    "internalModelMeshEnvVars": [],
    "tls": {"secretName": "", "clientAuth": ""},
    "modelMeshEndpoint": "",
}

# Maps whose content is the user's, replaced as a whole rather than merged key by key.
_FREE_FORM = {"runtimePodLabels", "runtimePodAnnotations", "resources", "modelMeshResources", "storageHelperResources"}


class ConfigError(ValueError):
    """An invalid model-serving-config; the message names the key."""


def _merge(defaults: Mapping[str, Any], user: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    canonical = {k.lower(): k for k in defaults}
    for raw_key, value in user.items():
        key = canonical.get(str(raw_key).lower())
        path = f"{where}{raw_key}"
        if key is None:
            continue  # unknown keys are ignored, as the reference does
        default = defaults[key]
        if isinstance(default, dict) and key not in _FREE_FORM:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a map")
            out[key] = _merge(default, value, f"{path}.")
            continue
        out[key] = _typed(value, default, path)
    return out


# Image settings whose digest a user's different tag clears, when the digest is the default's
# (the reference's clearDigestIfTagsDiffer: a tag set over a defaults file that pins a digest).
_IMAGE_KEYS = (("modelMeshImage",), ("storageHelperImage",), ("restProxy", "image"))


def _clear_default_digests(merged: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for path in _IMAGE_KEYS:
        image, default = merged, defaults
        for key in path:
            image, default = image[key], default[key]
        if image["tag"] != default["tag"] and image["digest"] == default["digest"]:
            image["digest"] = ""


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error on one line: where and what."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1} column {mark.column + 1}: {problem}"
    return " ".join(str(e).split())


def load_defaults_file(path: str) -> dict[str, Any]:
    """The defaults: DEFAULTS with the file at `path` merged over them (keys case-insensitive,
    types and ranges checked as for config.yaml). `path` "" is DEFAULTS_FILE, where the
    deployment mounts `model-serving-config-defaults`, and may be absent (then DEFAULTS, as the
    reference carries on without it); a path given explicitly must exist. Raises ConfigError,
    one line naming the file."""
    file = Path(path or DEFAULTS_FILE)
    try:
        text = file.read_text()
    except FileNotFoundError:
        if not path:
            return copy.deepcopy(DEFAULTS)
        raise ConfigError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{file}: not valid YAML: {_yaml_problem(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: must be a map of settings")
    try:
        merged = _merge(DEFAULTS, data, "")
        ControllerConfig.from_mapping({}, merged)  # every value usable, as for config.yaml
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None
    return merged


def _typed(value: Any, default: Any, path: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if isinstance(default, str):
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if isinstance(default, list):
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list")
        return value
    if isinstance(default, dict):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a map")
        return dict(value)
    return value


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    digest: str
    command: tuple[str, ...]

    @property
    def ref(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> "Image":
        return cls(str(d["name"]), str(d["tag"]), str(d["digest"]), tuple(str(c) for c in d["command"]))


@dataclass(frozen=True)
class ControllerConfig:
    pods_per_runtime: int
    headless_service: bool
    service_name: str
    service_port: int
    storage_secret_name: str
    service_account_name: str
    grpc_max_message_size: int
    enable_access_logging: bool
    allow_any_pvc: bool
    metrics_enabled: bool
    metrics_port: int
    metrics_scheme: str
    disable_prometheus_operator: bool
    scale_to_zero: bool
    scale_to_zero_grace_s: int
    rest_proxy_enabled: bool
    rest_proxy_port: int
    rest_proxy_skip_verify: bool
    rest_proxy_image: Image
    rest_proxy_resources: Mapping[str, Any]
    modelmesh_image: Image
    modelmesh_resources: Mapping[str, Any]
    storage_helper_image: Image
    storage_helper_resources: Mapping[str, Any]
    builtin_server_types: tuple[str, ...]
    payload_processors: tuple[str, ...]
    runtime_pod_labels: Mapping[str, str]
    runtime_pod_annotations: Mapping[str, str]
    image_pull_secrets: tuple[str, ...]
    internal_modelmesh_env: tuple[tuple[str, str], ...]
    tls_secret_name: str
    tls_client_auth: str
    modelmesh_endpoint: str

    @classmethod
    def defaults(cls, defaults: Mapping[str, Any] = DEFAULTS) -> "ControllerConfig":
        return cls.from_mapping({}, defaults)

    @classmethod
    def from_yaml(cls, text: str | None, defaults: Mapping[str, Any] = DEFAULTS) -> "ControllerConfig":
        """config.yaml of the user ConfigMap over `defaults` (load_defaults_file's)."""
        try:
            data = yaml.safe_load(text or "") or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config.yaml is not valid YAML: {e}") from None
        if not isinstance(data, Mapping):
            raise ConfigError("config.yaml must be a map")
        return cls.from_mapping(data, defaults)

    @classmethod
    def from_mapping(cls, user: Mapping[str, Any], defaults: Mapping[str, Any] = DEFAULTS) -> "ControllerConfig":
        c = _merge(defaults, user, "")
        _clear_default_digests(c, defaults)
        m, s2z, rp, tls = c["metrics"], c["scaleToZero"], c["restProxy"], c["tls"]
        _check(c["podsPerRuntime"] >= 0, "podsPerRuntime: expected >= 0")
        _check(s2z["gracePeriodSeconds"] >= 0, "scaleToZero.gracePeriodSeconds: expected >= 0")
        for key, value in (("inferenceServicePort", c["inferenceServicePort"]), ("metrics.port", m["port"]),
                           ("restProxy.port", rp["port"])):
            _check(1 <= value <= 65535, f"{key}: expected a port number 1-65535, got {value}")
        _check(c["grpcMaxMessageSizeBytes"] > 0, "grpcMaxMessageSizeBytes: expected > 0")
        _check(m["scheme"] in ("http", "https"), f"metrics.scheme: expected http or https, got {m['scheme']!r}")
        _check(tls["clientAuth"] in ("", "require", "optional"),
               f"tls.clientAuth: expected require or optional, got {tls['clientAuth']!r}")
        processors = c["payloadProcessors"]
        for p in processors:
            _check(isinstance(p, str) and p and not any(ch.isspace() for ch in p),
                   f"payloadProcessors: entries may not be empty or contain spaces: {p!r}")
        _check(bool(c["inferenceServiceName"]), "inferenceServiceName: may not be empty")
        env = []
        for item in c["internalModelMeshEnvVars"]:
            _check(isinstance(item, Mapping) and item.get("name"), "internalModelMeshEnvVars: entries need a name")
            env.append((str(item["name"]), str(item.get("value", ""))))
        secrets = []
        for item in c["imagePullSecrets"]:
            name = item.get("name") if isinstance(item, Mapping) else item
            _check(isinstance(name, str) and name, "imagePullSecrets: entries need a name")
            secrets.append(name)
        return cls(
            pods_per_runtime=c["podsPerRuntime"], headless_service=c["headlessService"],
            service_name=c["inferenceServiceName"], service_port=c["inferenceServicePort"],
            storage_secret_name=c["storageSecretName"], service_account_name=c["serviceAccountName"],
            grpc_max_message_size=c["grpcMaxMessageSizeBytes"], enable_access_logging=c["enableAccessLogging"],
            allow_any_pvc=c["allowAnyPVC"], metrics_enabled=m["enabled"], metrics_port=m["port"],
            metrics_scheme=m["scheme"], disable_prometheus_operator=m["disablePrometheusOperatorSupport"],
            scale_to_zero=s2z["enabled"], scale_to_zero_grace_s=s2z["gracePeriodSeconds"],
            rest_proxy_enabled=rp["enabled"], rest_proxy_port=rp["port"], rest_proxy_skip_verify=rp["skipVerify"],
            rest_proxy_image=Image.of(rp["image"]), rest_proxy_resources=rp["resources"],
            modelmesh_image=Image.of(c["modelMeshImage"]), modelmesh_resources=c["modelMeshResources"],
            storage_helper_image=Image.of(c["storageHelperImage"]),
            storage_helper_resources=c["storageHelperResources"],
            builtin_server_types=tuple(str(t) for t in c["builtInServerTypes"]),
            payload_processors=tuple(processors),
            runtime_pod_labels={str(k): str(v) for k, v in c["runtimePodLabels"].items()},
            runtime_pod_annotations={str(k): str(v) for k, v in c["runtimePodAnnotations"].items()},
            image_pull_secrets=tuple(secrets), internal_modelmesh_env=tuple(env),
            tls_secret_name=tls["secretName"], tls_client_auth=tls["clientAuth"],
            modelmesh_endpoint=c["modelMeshEndpoint"],
        )


def _check(ok: Any, message: str) -> None:
    if not ok:
        raise ConfigError(message)

"""Golden Deployment manifests: the builder's output per built-in runtime and config variant.

Regenerate after an intended change with `MODELMESH_UPDATE_GOLDEN=1 pytest tests/controller`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from modelmesh.controller.deployment import RuntimeRef, build_deployment
from modelmesh.controller.user_config import ControllerConfig

HERE = Path(__file__).parent
GOLDEN_DIR = HERE / "golden"
RUNTIMES_DIR = HERE / "runtimes"
BUILTIN = ["mlserver-1.x", "triton-2.x", "ovms-1.x", "torchserve-0.x"]

CUSTOM_RUNTIME = {
    "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
    "metadata": {"name": "custom-rt", "uid": "uid-custom"},
    "spec": {
        "supportedModelFormats": [{"name": "custom-fmt", "version": "1", "autoSelect": True}],
        "protocolVersions": ["grpc-v1"], "multiModel": True,
        "grpcEndpoint": "port:8085", "grpcDataEndpoint": "port:8091",
        "containers": [{"name": "custom", "image": "example.com/custom-runtime:1.0",
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}}],
    },
}

# name -> (runtime, user config)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "variant-metrics-off": ("mlserver-1.x", {"metrics": {"enabled": False}}),
    "variant-rest-proxy-off": ("mlserver-1.x", {"restProxy": {"enabled": False}}),
    "variant-access-logging": ("mlserver-1.x", {"enableAccessLogging": True}),
    "variant-payload-processors": ("mlserver-1.x", {"payloadProcessors": ["http://sink:8080/consume",
                                                                          "logger://"]}),
    "variant-tls": ("mlserver-1.x", {"tls": {"secretName": "mm-tls", "clientAuth": "require"}}),
    "variant-custom-puller": ("custom", {}),
    "variant-custom-no-puller": ("custom-no-puller", {}),
    "variant-pod-settings": ("mlserver-1.x", {
        "runtimePodLabels": {"team": "ml"}, "runtimePodAnnotations": {"note": "x"},
        "imagePullSecrets": [{"name": "regcred"}], "serviceAccountName": "mm-sa",
        "internalModelMeshEnvVars": [{"name": "MM_JANITOR_FREQ_SECS", "value": "5"}],
        "storageSecretName": "my-storage", "grpcMaxMessageSizeBytes": 1048576}),
}


def load_runtime(name: str) -> dict[str, Any]:
    if name == "custom":
        return CUSTOM_RUNTIME
    if name == "custom-no-puller":
        rt = yaml.safe_load(yaml.safe_dump(CUSTOM_RUNTIME))
        rt["metadata"]["name"] = "custom-no-puller"
        rt["spec"]["storageHelper"] = {"disabled": True}
        return rt
    doc = yaml.safe_load((RUNTIMES_DIR / f"{name}.yaml").read_text())
    doc["metadata"]["uid"] = f"uid-{name}"
    return doc


def runtime_ref(doc: dict[str, Any]) -> RuntimeRef:
    return RuntimeRef(name=doc["metadata"]["name"], kind=doc["kind"], uid=doc["metadata"].get("uid", ""),
                      spec=doc["spec"], annotations=doc["metadata"].get("annotations") or {})


def render(case: str, namespace: str = "modelmesh-serving") -> dict[str, Any]:
    runtime, user = (case, {}) if case in BUILTIN else VARIANTS[case]
    config = ControllerConfig.from_mapping(user)
    return build_deployment(runtime_ref(load_runtime(runtime)), namespace, config, 2, "model-serving-etcd",
                            ["models-pvc"] if case == "variant-pod-settings" else [])


def check_golden(case: str, actual: dict[str, Any]) -> None:
    path = GOLDEN_DIR / f"{case}.yaml"
    text = yaml.safe_dump(actual, sort_keys=True)
    if os.environ.get("MODELMESH_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with MODELMESH_UPDATE_GOLDEN=1"
    assert yaml.safe_load(path.read_text()) == actual, f"{case}: Deployment differs from {path}"

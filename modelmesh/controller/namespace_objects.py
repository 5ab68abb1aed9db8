"""Objects the controller keeps in every served namespace: tc-config, the `modelmesh-serving`
Service, its ServiceMonitor and the namespace's copy of the etcd secret."""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from modelmesh.controller.deployment import MANAGED_BY
from modelmesh.controller.user_config import ControllerConfig
from modelmesh.modelspec.runtime_labels import type_constraints

TC_CONFIG = "tc-config"
ETCD_KEY = "etcd_connection"
SERVICE_MONITOR = "modelmesh-metrics-monitor"

# Data-plane RPCs whose request names the model in a field: the mesh reads the vmodel id there.
DATAPLANE_API_CONFIG = {
    "rpcConfigs": {
        "inference.GRPCInferenceService/ModelInfer": {"idExtractionPath": [1], "vModelId": True},
        "inference.GRPCInferenceService/ModelMetadata": {"idExtractionPath": [1], "vModelId": True},
        "tensorflow.serving.PredictionService/Predict": {"idExtractionPath": [1, 1], "vModelId": True},
        "org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions": {
            "idExtractionPath": [1], "vModelId": True},
    },
    "allowOtherRpcs": True,
}

_LABELS = {"app.kubernetes.io/instance": MANAGED_BY, "app.kubernetes.io/managed-by": MANAGED_BY,
           "app.kubernetes.io/name": MANAGED_BY}


def tc_config(namespace: str, runtimes: Iterable[tuple[str, Mapping[str, Any]]],
              config: ControllerConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": TC_CONFIG, "namespace": namespace, "labels": dict(_LABELS)},
        "data": {
            "type_constraints": json.dumps(type_constraints(runtimes, config.rest_proxy_enabled), sort_keys=True),
            "dataplane_api_config": json.dumps(DATAPLANE_API_CONFIG, sort_keys=True),
        },
    }


def service(namespace: str, config: ControllerConfig) -> dict[str, Any]:
    ports = [{"name": "grpc", "port": config.service_port, "targetPort": "grpc", "protocol": "TCP"}]
    if config.rest_proxy_enabled:
        ports.append({"name": "http", "port": config.rest_proxy_port, "targetPort": "http", "protocol": "TCP"})
    if config.metrics_enabled:
        ports.append({"name": "prometheus", "port": config.metrics_port, "targetPort": "prometheus",
                      "protocol": "TCP"})
    spec: dict[str, Any] = {"selector": {"modelmesh-service": config.service_name}, "ports": ports}
    if config.headless_service:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": config.service_name, "namespace": namespace,
                     "labels": {**_LABELS, "modelmesh-service": config.service_name}},
        "spec": spec,
    }


def service_monitor(namespace: str, config: ControllerConfig) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": SERVICE_MONITOR, "namespace": namespace, "labels": dict(_LABELS)},
        "spec": {
            "selector": {"matchLabels": {"modelmesh-service": config.service_name}},
            "endpoints": [{"port": "prometheus", "scheme": config.metrics_scheme,
                           "tlsConfig": {"insecureSkipVerify": True}}],
        },
    }


def namespaced_etcd_connection(raw: bytes, namespace: str) -> bytes:
    """The controller's etcd_connection with root_prefix extended by `/mm_ns/<ns>`, so every
    user namespace's mesh has its own keys in the shared etcd."""
    conn = json.loads(raw)
    if not isinstance(conn, dict):
        raise ValueError("etcd_connection must be a JSON object")
    conn["root_prefix"] = posixpath.join(conn.get("root_prefix") or "", "mm_ns", namespace)
    return json.dumps(conn, sort_keys=True).encode()


def etcd_secret_copy(source: Mapping[str, Any], name: str, namespace: str) -> dict[str, Any]:
    data = (source.get("data") or {}).get(ETCD_KEY)
    if data is None:
        raise ValueError(f"secret {name} has no key {ETCD_KEY}")
    value = namespaced_etcd_connection(base64.b64decode(data), namespace)
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(_LABELS)},
        "type": "Opaque",
        "data": {ETCD_KEY: base64.b64encode(value).decode()},
    }

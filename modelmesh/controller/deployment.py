"""The runtime Deployment `<serviceName>-<runtimeName>`: the runtime's own containers plus the
adapter or puller, the REST proxy and the mesh container (controller.md)."""

from __future__ import annotations

import copy
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelmesh.controller.quantity import binary_si, normalized_resources, parse_quantity, quantity_string
from modelmesh.controller.runtime_spec import Endpoint
from modelmesh.controller.user_config import ControllerConfig, Image
from modelmesh.modelspec.runtime_labels import runtime_labels

MANAGED_BY = "modelmesh-controller"
MESH_CONFIG_DIR = "/etc/watson/mmesh/config"
ETCD_DIR = "/opt/kserve/mmesh/etcd"
TLS_DIR = "/opt/kserve/mmesh/tls"
MODELS_DIR = "/models"
STORAGE_CONFIG_DIR = "/storage-config"
PVC_MOUNT_ROOT = "/pvc_mounts"
PULLER_PORT = 8086
PROBE_PORT = 8089
SHUTDOWN_TIMEOUT_MS = 90000
TERMINATION_GRACE_S = 90

# Shutdown order (controller.md, "Hardening and shutdown order"): Kubernetes runs every
# container's preStop at once and stops a container when its own preStop returns. The mesh's
# preStop starts the hand-off of its models and waits for it; the runtime's containers and the
# adapter/puller wait on the mesh's /prestop, which it answers only when it is about to exit,
# so the model server keeps serving (and unloading) while the mesh still needs it.
PRESTOP_PORT = 8090  # the mesh's MM_PRESTOP_WAIT_PORT (default)
WAIT_FOR_MESH = {"preStop": {"httpGet": {"path": "/prestop", "port": PRESTOP_PORT, "scheme": "HTTP"}}}
# The reference's own hook and script path: the image provides it, so a modelMeshImage that is
# the reference's mesh image works too.
MESH_STOP = {"preStop": {"exec": {"command": ["/opt/kserve/mmesh/stop.sh", "wait"]}}}
DROP_ALL_CAPABILITIES = {"capabilities": {"drop": ["ALL"]}}
# Where the runtime has no required node affinity of its own: the architectures images exist for.
ARCH_TERM = {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In",
                                   "values": ["amd64", "arm64", "s390x"]}]}


@dataclass(frozen=True)
class RuntimeRef:
    """A ServingRuntime or ClusterServingRuntime as the builder needs it."""

    name: str
    kind: str  # ServingRuntime | ClusterServingRuntime
    uid: str
    spec: Mapping[str, Any]
    annotations: Mapping[str, str]
    api_version: str = "serving.kserve.io/v1alpha1"


def deployment_name(service_name: str, runtime_name: str) -> str:
    return f"{service_name}-{runtime_name}"


def deployment_labels(service_name: str, runtime_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/instance": MANAGED_BY,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": MANAGED_BY,
        "modelmesh-service": service_name,
        "name": deployment_name(service_name, runtime_name),
    }


def _tls_env(config: ControllerConfig, secret_has_ca: bool) -> list[dict[str, Any]]:
    """The mm and rest-proxy TLS settings. With client auth, whoever holds our own certificate
    is trusted, and the secret's CA when it has one (as the reference: `tls.crt[,ca.crt]`;
    naming an absent ca.crt would stop the mesh at start-up)."""
    env = [_env("MM_TLS_KEY_CERT_PATH", f"{TLS_DIR}/tls.crt"), _env("MM_TLS_PRIVATE_KEY_PATH", f"{TLS_DIR}/tls.key")]
    if config.tls_client_auth:
        trust = f"{TLS_DIR}/tls.crt" + (f",{TLS_DIR}/ca.crt" if secret_has_ca else "")
        env += [_env("MM_TLS_CLIENT_AUTH", config.tls_client_auth), _env("MM_TLS_TRUST_CERT_PATH", trust)]
    return env


def _env(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _endpoint_env(prefix: str, endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.socket_path:
        return _env(f"{prefix}_SOCKET_PATH", endpoint.socket_path)
    return _env(f"{prefix}_PORT", endpoint.port)


def _models_dir_size(containers: Sequence[Mapping[str, Any]]) -> str | None:
    total = 0
    for c in containers:
        limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is not None:
            total += parse_quantity(limit)
    if not total:
        return None
    return binary_si(math.ceil(total * 3 / 2))  # 1.5x: room for the files of every loaded model


def socket_dir(*endpoints: Endpoint) -> str | None:
    """The directory of the runtime's unix sockets, mounted in every container that uses them
    (runtime_spec.validate_runtime allows only one)."""
    dirs = {posixpath.dirname(e.socket_path) for e in endpoints if e.socket_path}
    return min(dirs) if dirs else None


def _hardened(container: dict[str, Any], lifecycle: Mapping[str, Any] | None) -> dict[str, Any]:
    """Capabilities dropped (unless the runtime set its own securityContext), the shutdown-order
    hook, and resources as quantity strings."""
    container.setdefault("securityContext", copy.deepcopy(DROP_ALL_CAPABILITIES))
    if lifecycle is not None:
        container["lifecycle"] = copy.deepcopy(lifecycle)
    if "resources" in container:
        container["resources"] = normalized_resources(container["resources"])
    return container


def _volume(volume: Mapping[str, Any]) -> dict[str, Any]:
    volume = dict(volume)
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, Mapping) and empty_dir.get("sizeLimit") is not None:
        volume["emptyDir"] = {**empty_dir, "sizeLimit": quantity_string(empty_dir["sizeLimit"])}
    return volume


def _affinity(affinity: Mapping[str, Any] | None) -> dict[str, Any]:
    """The runtime's affinity, with the default architecture rule when it requires no node
    affinity itself. Required node-selector terms are ORed, so a runtime's own terms are kept
    as they are: adding the default as another term would loosen them."""
    out = dict(affinity or {})
    node = dict(out.get("nodeAffinity") or {})
    if not node.get("requiredDuringSchedulingIgnoredDuringExecution"):
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [copy.deepcopy(ARCH_TERM)]}
    out["nodeAffinity"] = node
    return out


def _image_command(image: Image, role: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"image": image.ref}
    if image.command:
        out["command"] = [*image.command, *([role] if role else [])]
    return out


def build_deployment(
    runtime: RuntimeRef,
    namespace: str,
    config: ControllerConfig,
    replicas: int,
    etcd_secret_name: str,
    pvc_claims: Sequence[str] = (),
    tls_secret_has_ca: bool = False,
) -> dict[str, Any]:
    """`tls_secret_has_ca`: the TLS secret (config.tls_secret_name) holds a `ca.crt` key; the
    caller reads the secret, as the reference does, since what is trusted depends on it."""
    spec = runtime.spec
    svc = config.service_name
    name = deployment_name(svc, runtime.name)
    labels = deployment_labels(svc, runtime.name)
    adapter = spec.get("builtInAdapter") or None
    grpc_endpoint = Endpoint.parse(spec.get("grpcEndpoint") or "port:8085")
    data_endpoint = Endpoint.parse(spec["grpcDataEndpoint"]) if spec.get("grpcDataEndpoint") else grpc_endpoint
    use_puller = adapter is None and not (spec.get("storageHelper") or {}).get("disabled", False)
    sockets = socket_dir(grpc_endpoint, data_endpoint)
    uses_socket = sockets is not None
    tls = bool(config.tls_secret_name)

    volumes: list[dict[str, Any]] = [{"name": "models-dir", "emptyDir": {}}]
    size = _models_dir_size(spec.get("containers") or [])
    if size:
        volumes[0]["emptyDir"]["sizeLimit"] = size
    if uses_socket:
        volumes.append({"name": "domain-socket", "emptyDir": {}})
    if adapter or use_puller:
        volumes.append({"name": "storage-config", "secret": {"secretName": config.storage_secret_name,
                                                              "defaultMode": 420}})
    for claim in sorted(set(pvc_claims)):
        volumes.append({"name": claim, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    volumes.append({"name": "tc-config", "configMap": {"name": "tc-config", "defaultMode": 420}})
    volumes.append({"name": "etcd-config", "secret": {"secretName": etcd_secret_name, "defaultMode": 420}})
    if tls:
        volumes.append({"name": "tls-certs", "secret": {"secretName": config.tls_secret_name, "defaultMode": 420}})
    volumes.extend(_volume(v) for v in spec.get("volumes") or [])

    socket_mount = {"name": "domain-socket", "mountPath": sockets}
    containers: list[dict[str, Any]] = []
    for c in spec.get("containers") or []:
        c = dict(c)
        mounts = list(c.get("volumeMounts") or [])
        mounts.append({"name": "models-dir", "mountPath": MODELS_DIR})
        if uses_socket:
            mounts.append(socket_mount)
        c["volumeMounts"] = mounts
        containers.append(_hardened(c, WAIT_FOR_MESH))

    storage_mounts = [{"name": "models-dir", "mountPath": MODELS_DIR},
                      {"name": "storage-config", "mountPath": STORAGE_CONFIG_DIR, "readOnly": True}]
    storage_mounts += [{"name": claim, "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": True}
                       for claim in sorted(set(pvc_claims))]
    if uses_socket:
        storage_mounts.append(socket_mount)
    annotations = runtime.annotations
    if adapter:
        server_type = adapter["serverType"]
        runtime_container = next(c for c in containers if c.get("name") == server_type)
        image = (runtime_container.get("image") or "").rsplit("@", 1)[0]
        version = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        env = [
            _env("SERVER_TYPE", server_type),
            _env("ADAPTER_PORT", grpc_endpoint.port),
            _env("RUNTIME_PORT", adapter.get("runtimeManagementPort", 8001)),
            _env("RUNTIME_DATA_ENDPOINT", str(data_endpoint)),
            {"name": "CONTAINER_MEM_REQ_BYTES", "valueFrom": {"resourceFieldRef": {
                "containerName": server_type, "resource": "requests.memory"}}},
            _env("MEM_BUFFER_BYTES", adapter.get("memBufferBytes", 134217728)),
            _env("LOADTIME_TIMEOUT", adapter.get("modelLoadingTimeoutMillis", 90000)),
            _env("USE_EMBEDDED_PULLER", "true"),
            _env("RUNTIME_VERSION", version),
        ]
        if "maxLoadingConcurrency" in annotations:
            env.append(_env("LOADING_CONCURRENCY", annotations["maxLoadingConcurrency"]))
        if "perModelConcurrencyLimit" in annotations:
            env.append(_env("LIMIT_PER_MODEL_CONCURRENCY", annotations["perModelConcurrencyLimit"]))
        env.extend(adapter.get("env") or [])
        containers.append(_hardened({
            "name": f"{server_type}-adapter", **_image_command(config.storage_helper_image, "adapter"),
            "env": env, "resources": dict(config.storage_helper_resources), "volumeMounts": storage_mounts,
            "imagePullPolicy": "IfNotPresent",
        }, WAIT_FOR_MESH))
    elif use_puller:
        env = [_env("ADAPTER_PORT", PULLER_PORT), _endpoint_env("RUNTIME", grpc_endpoint)]
        containers.append(_hardened({
            "name": "puller", **_image_command(config.storage_helper_image, "puller"),
            "env": env, "ports": [{"name": "puller", "containerPort": PULLER_PORT}],
            "resources": dict(config.storage_helper_resources), "volumeMounts": storage_mounts,
            "imagePullPolicy": "IfNotPresent",
        }, WAIT_FOR_MESH))

    if config.rest_proxy_enabled:
        rest_env = [
            _env("REST_PROXY_LISTEN_PORT", config.rest_proxy_port),
            _env("REST_PROXY_GRPC_PORT", config.service_port),
            _env("REST_PROXY_USE_TLS", str(tls).lower()),
            _env("REST_PROXY_GRPC_MAX_MSG_SIZE_BYTES", config.grpc_max_message_size),
            _env("REST_PROXY_SKIP_VERIFY", str(config.rest_proxy_skip_verify).lower()),
        ]
        rest = {
            "name": "rest-proxy", **_image_command(config.rest_proxy_image, None), "env": rest_env,
            "ports": [{"name": "http", "containerPort": config.rest_proxy_port}],
            "resources": dict(config.rest_proxy_resources), "imagePullPolicy": "IfNotPresent",
        }
        if tls:  # with client auth too: the REST port is no way around it (as the reference)
            rest_env += _tls_env(config, tls_secret_has_ca)
            rest["volumeMounts"] = [{"name": "tls-certs", "mountPath": TLS_DIR, "readOnly": True}]
        containers.append(_hardened(rest, None))  # no hook: as the reference, it stops with the pod

    # The mesh reaches the SPI on the adapter/puller (or the runtime itself) and forwards
    # inference straight to the runtime's data endpoint.
    spi_endpoint = Endpoint(port=PULLER_PORT) if use_puller else grpc_endpoint
    labels_env = ",".join(runtime_labels(runtime.name, spec, config.rest_proxy_enabled))
    mm_env = [
        _env("MM_SERVICE_NAME", svc),
        _env("MM_SVC_GRPC_PORT", config.service_port),
        _field_env("WKUBE_POD_NAME", "metadata.name"),
        _field_env("WKUBE_POD_IPADDR", "status.podIP"),
        _field_env("MM_LOCATION", "status.hostIP"),
        _env("KV_STORE", f"etcd:{ETCD_DIR}/etcd_connection"),
        _env("MM_METRICS", f"prometheus:port={config.metrics_port};scheme={config.metrics_scheme}"
             if config.metrics_enabled else "disabled"),
        _env("SHUTDOWN_TIMEOUT_MS", SHUTDOWN_TIMEOUT_MS),
        _endpoint_env("INTERNAL_SERVING_GRPC", data_endpoint),
        _endpoint_env("INTERNAL_GRPC", spi_endpoint),
        _env("MM_SVC_GRPC_MAX_MSG_SIZE", config.grpc_max_message_size),
        _env("MM_KVSTORE_PREFIX", "mm"),
        _env("MM_DEFAULT_VMODEL_OWNER", "ksp"),
        _env("MM_LABELS", labels_env),
        _env("MM_TYPE_CONSTRAINTS_PATH", f"{MESH_CONFIG_DIR}/type_constraints"),
        _env("MM_DATAPLANE_CONFIG_PATH", f"{MESH_CONFIG_DIR}/dataplane_api_config"),
    ]
    if config.enable_access_logging:  # as the reference: only when on
        mm_env.append(_env("MM_LOG_EACH_INVOKE", "true"))
    if config.payload_processors:
        mm_env.append(_env("MM_PAYLOAD_PROCESSORS", " ".join(config.payload_processors)))
    mm_mounts = [{"name": "tc-config", "mountPath": MESH_CONFIG_DIR},  # a ConfigMap volume is read-only anyway
                 {"name": "etcd-config", "mountPath": ETCD_DIR, "readOnly": True}]
    if uses_socket:
        mm_mounts.append(socket_mount)
    if tls:
        mm_env += _tls_env(config, tls_secret_has_ca)
        mm_mounts.append({"name": "tls-certs", "mountPath": TLS_DIR, "readOnly": True})
    mm_env += [_env(k, v) for k, v in config.internal_modelmesh_env]
    mm_ports = [{"name": "grpc", "containerPort": config.service_port}]
    if config.metrics_enabled:
        mm_ports.append({"name": "prometheus", "containerPort": config.metrics_port})
    containers.append(_hardened({
        "name": "mm", **_image_command(config.modelmesh_image, None), "env": mm_env, "ports": mm_ports,
        "resources": dict(config.modelmesh_resources), "volumeMounts": mm_mounts, "imagePullPolicy": "IfNotPresent",
        "readinessProbe": {"httpGet": {"path": "/ready", "port": PROBE_PORT, "scheme": "HTTP"},
                           "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/live", "port": PROBE_PORT, "scheme": "HTTP"},
                          "initialDelaySeconds": 90, "periodSeconds": 30, "timeoutSeconds": 5,
                          "failureThreshold": 2},
    }, MESH_STOP))

    pod_labels = {**config.runtime_pod_labels, **(spec.get("labels") or {}), **labels}
    pod_annotations = {**config.runtime_pod_annotations, **(spec.get("annotations") or {})}
    if config.metrics_enabled:
        pod_annotations.update({
            "prometheus.io/path": "/metrics", "prometheus.io/port": str(config.metrics_port),
            "prometheus.io/scheme": config.metrics_scheme, "prometheus.io/scrape": "true",
        })
    pod_spec: dict[str, Any] = {
        "containers": containers, "volumes": volumes, "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "affinity": _affinity(spec.get("affinity")),
    }
    if config.service_account_name:
        pod_spec["serviceAccountName"] = config.service_account_name
    pull_secrets = [*({"name": n} for n in config.image_pull_secrets), *(spec.get("imagePullSecrets") or [])]
    if pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secrets
    for key in ("nodeSelector", "tolerations"):
        if spec.get(key):
            pod_spec[key] = spec[key]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": namespace, "labels": labels,
            "ownerReferences": [owner_reference(runtime)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"modelmesh-service": svc, "name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "75%", "maxUnavailable": "15%"}},
            "template": {
                "metadata": {"labels": dict(sorted(pod_labels.items())),
                             **({"annotations": dict(sorted(pod_annotations.items()))} if pod_annotations else {})},
                "spec": pod_spec,
            },
        },
    }


def owner_reference(runtime: RuntimeRef) -> dict[str, Any]:
    return {"apiVersion": runtime.api_version, "kind": runtime.kind, "name": runtime.name, "uid": runtime.uid,
            "controller": True, "blockOwnerDeletion": True}

"""Generate the configuration reference from the code, so it cannot drift:

- deploy/config-defaults/config-defaults.yaml: the ConfigMap model-serving-config-defaults
  (the controller's built-in defaults, modelmesh.controller.user_config.DEFAULTS);
- docs/configuration.md: every model-serving-config key with its default, and the controller's
  launch settings (env var, flag, default) from modelmesh.config.controller.

    python scripts/gen_reference.py          # write both files
    python scripts/gen_reference.py --check  # exit 1 when a file is stale (tests/deploy runs this)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelmesh.config.controller import DEFAULTS_FILE as MOUNTED_DEFAULTS
from modelmesh.config.controller import ControllerSettings
from modelmesh.config.settings import describe
from modelmesh.controller.user_config import CONFIG_KEY, CONFIG_MAP_NAME, DEFAULTS

DEFAULTS_FILE = ROOT / "deploy" / "config-defaults" / "config-defaults.yaml"
DOC_FILE = ROOT / "docs" / "configuration.md"

# One line per key (dotted path). A key of DEFAULTS without a line here fails generation, so a
# new setting cannot ship undocumented.
DESCRIPTIONS: dict[str, str] = {
    "podsPerRuntime": "Pods per runtime Deployment (a runtime's `spec.replicas` overrides it; 0 when scaled to zero).",
    "headlessService": "Make the `inferenceServiceName` Service headless (clients balance over pod IPs).",
    "inferenceServiceName": "Name of the Service in front of the runtime pods; also the prefix of runtime "
                            "Deployment names (`<name>-<runtime>`) and the mesh's service name in etcd.",
    "inferenceServicePort": "gRPC port of that Service (inference and model management).",
    "storageSecretName": "Secret with the storage entries (one key per storage, see docs/storage.md).",
    "serviceAccountName": "Service account of the runtime pods (empty: the namespace's default).",
    "grpcMaxMessageSizeBytes": "Largest gRPC message the mesh and the REST proxy accept.",
    "enableAccessLogging": "Log every inference request in the mesh (`MM_LOG_EACH_INVOKE`).",
    "allowAnyPVC": "Let models name any PVC in `storageUri: pvc://...`, not only those in the storage secret.",
    "metrics": "Prometheus metrics of the runtime pods.",
    "metrics.enabled": "Expose `/metrics` on every runtime pod and the `prometheus` Service port.",
    "metrics.port": "Metrics port of the mesh container.",
    "metrics.scheme": "`https` or `http` for the metrics endpoint.",
    "metrics.disablePrometheusOperatorSupport": "Do not create the ServiceMonitor `modelmesh-metrics-monitor` "
                                                "even when the Prometheus Operator CRD exists.",
    "scaleToZero": "Scale a runtime to 0 pods while no model can use it.",
    "scaleToZero.enabled": "Turn scale-to-zero on.",
    "scaleToZero.gracePeriodSeconds": "Wait this long after the last model is gone before scaling down.",
    "restProxy": "The KServe V2 REST proxy container (`modelmesh runtime rest-proxy`).",
    "restProxy.enabled": "Add the REST proxy to every runtime pod.",
    "restProxy.port": "REST port of the proxy (and of the Service's `http` port).",
    "restProxy.skipVerify": "Skip TLS verification from the proxy to the mesh.",
    "restProxy.image": "Image of the REST proxy container.",
    "restProxy.image.name": "Image name.",
    "restProxy.image.tag": "Image tag.",
    "restProxy.image.digest": "Image digest (wins over the tag when set).",
    "restProxy.image.command": "Container command.",
    "restProxy.resources": "Resources of the REST proxy container (replaced as a whole).",
    "modelMeshImage": "Image of the mesh container `mm` (`modelmesh runtime mesh`).",
    "modelMeshImage.name": "Image name.",
    "modelMeshImage.tag": "Image tag.",
    "modelMeshImage.digest": "Image digest (wins over the tag when set).",
    "modelMeshImage.command": "Container command.",
    "modelMeshResources": "Resources of the mesh container (replaced as a whole).",
    "storageHelperImage": "Image of the built-in adapter (`<serverType>-adapter`) and of the `puller` "
                          "(`modelmesh runtime adapter|puller`).",
    "storageHelperImage.name": "Image name.",
    "storageHelperImage.tag": "Image tag.",
    "storageHelperImage.digest": "Image digest (wins over the tag when set).",
    "storageHelperImage.command": "Container command; the role (`adapter` or `puller`) is appended.",
    "storageHelperResources": "Resources of the adapter / puller container (replaced as a whole).",
    "builtInServerTypes": "`builtInAdapter.serverType` values a runtime may use.",
    "payloadProcessors": "Payload processor URIs given to the mesh (`MM_PAYLOAD_PROCESSORS`); no spaces.",
    "runtimePodLabels": "Labels added to every runtime pod.",
    "runtimePodAnnotations": "Annotations added to every runtime pod.",
    "imagePullSecrets": "Pull secrets of every runtime pod (names or `{name: ...}`).",
    "internalModelMeshEnvVars": "Extra env vars `[{name, value}]` for the mesh container.",
    "tls": "TLS of the mesh's gRPC and REST endpoints.",
    "tls.secretName": "Secret with `tls.crt` / `tls.key` (and `ca.crt`); empty: no TLS.",
    "tls.clientAuth": "`require` or `optional` client certificates (empty: none).",
    "modelMeshEndpoint": "Development only: a gRPC target the controller dials instead of the Service.",
}


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, bool]]:
    """(dotted key, default, is a section) in the order of DEFAULTS."""
    rows = []
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not key.endswith("esources"):
            rows.append((path, value, True))
            rows.extend(_flatten(value, f"{path}."))
        else:
            rows.append((path, value, False))
    return rows


def _show(value: Any) -> str:
    return "`" + json.dumps(value, separators=(", ", ": ")) + "`"


def render_defaults() -> str:
    body = yaml.safe_dump(DEFAULTS, sort_keys=False, default_flow_style=False, width=100)
    return ("# GENERATED by scripts/gen_reference.py from modelmesh/controller/user_config.py (the built-in\n"
            "# defaults); regenerate rather than edit it here. The controller reads this file at start from\n"
            f"# {MOUNTED_DEFAULTS}. Edit the ConfigMap\n"
            "# model-serving-config-defaults in the cluster and restart the controller to change the defaults\n"
            "# of every namespace; a key left out keeps its built-in value. Users override any key in the ConfigMap "
            f"{CONFIG_MAP_NAME} (key {CONFIG_KEY}).\n" + body)


def render_doc() -> str:
    rows = _flatten(DEFAULTS)
    missing = [k for k, _, _ in rows if k not in DESCRIPTIONS]
    extra = sorted(set(DESCRIPTIONS) - {k for k, _, _ in rows})
    if missing or extra:
        raise SystemExit(f"gen_reference: keys without a description: {missing}; described but unknown: {extra}")
    out = [
        "# Configuration reference",
        "",
        "<!-- GENERATED by scripts/gen_reference.py from the code: do not edit; run the script. -->",
        "",
        f"## `{CONFIG_MAP_NAME}` (ConfigMap in the controller namespace, key `{CONFIG_KEY}`)",
        "",
        "Every key is optional: what you set is merged over these defaults (keys are case-insensitive;",
        "maps marked *replaced as a whole* are not merged key by key). A change re-reconciles every",
        "runtime; deleting the ConfigMap reverts to the defaults; an invalid value is reported as a",
        "Warning Event on the ConfigMap and not applied.",
        "",
        "The defaults are layered as in the reference: built-in values < the ConfigMap",
        "`model-serving-config-defaults` (`deploy/config-defaults/config-defaults.yaml`, the built-in",
        "values as shipped), which the controller reads at start from",
        f"`{MOUNTED_DEFAULTS}` where `deploy/manager` mounts it (or from",
        "`CONFIG_DEFAULTS_FILE`) < `model-serving-config`.",
        "A platform team edits `model-serving-config-defaults` to change the defaults of every",
        "namespace (e.g. `modelMeshImage`, `restProxy.image`, resources) and restarts the controller",
        "(`kubectl rollout restart deployment/modelmesh-controller`); keys left out of it keep their",
        "built-in values, its keys are case-insensitive too. A broken defaults file (not YAML, a wrong",
        "type or value) stops the controller at start: exit 2 and one line naming the file. With no",
        "file at the mount path the built-in values apply; a digest set there is cleared when a user",
        "sets another tag for that image (as the reference).",
        "",
        "```yaml",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {CONFIG_MAP_NAME}",
        "  namespace: modelmesh-serving",
        "data:",
        f"  {CONFIG_KEY}: |",
        "    podsPerRuntime: 1",
        "    scaleToZero:",
        "      enabled: false",
        "```",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for key, value, section in rows:
        default = "" if section else _show(value)
        out.append(f"| `{key}` | {default} | {DESCRIPTIONS[key]} |")
    out += [
        "",
        "## Controller launch settings (env vars of the `modelmesh-controller` Deployment)",
        "",
        "Each is also a flag of `modelmesh controller` (a flag wins over the env var). The shipped",
        "Deployment (`deploy/manager/manager.yaml`) sets them explicitly.",
        "",
        "| env var | flag | default | meaning |",
        "|---|---|---|---|",
    ]
    for flag, env, default, help_text in describe(ControllerSettings):
        out.append(f"| `{env}` | `{flag}` | {('`' + default + '`') if default else ''} | {help_text} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when a generated file is stale")
    args = parser.parse_args()
    stale = []
    for path, text in ((DEFAULTS_FILE, render_defaults()), (DOC_FILE, render_doc())):
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run: python scripts/gen_reference.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

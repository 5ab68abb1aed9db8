"""Settings of `modelmesh controller` (launch contract in controller.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelmesh.config.common import LogSettings
from modelmesh.config.settings import parse_bool, port, setting
from modelmesh.config.tls import TlsIdentity, load_identity

_SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Where the reference mounts the ConfigMap model-serving-config-defaults and reads its defaults
# (modelmesh-serving pkg/config: MountLocation + config-defaults.yaml); deploy/manager mounts it there.
DEFAULTS_FILE = "/etc/model-serving/config/default/config-defaults.yaml"


def _default_namespace() -> str:
    try:
        return _SA_NAMESPACE_FILE.read_text().strip() or "model-serving"
    except OSError:
        return "model-serving"


@dataclass(frozen=True)
class ControllerSettings(LogSettings):
    kubeconfig: str = setting("KUBECONFIG", "", "kubeconfig file (default: in-cluster service account)")
    namespace: str = setting(
        "NAMESPACE", default_factory=_default_namespace,
        help="controller namespace (default: service-account namespace, else model-serving)",
    )
    pod_name: str = setting("POD_NAME", "", "this controller pod's name (leader identity)")
    controller_deployment: str = setting("CONTROLLER_DEPLOYMENT", "modelmesh-controller", "the controller's Deployment")
    namespace_scope: bool = setting("NAMESPACE_SCOPE", False, "serve only the controller namespace", parse=parse_bool)
    etcd_secret_name: str = setting("ETCD_SECRET_NAME", "model-serving-etcd", "secret with key etcd_connection")
    enable_isvc_watch: bool | None = setting(
        "ENABLE_ISVC_WATCH", None, "watch InferenceServices (unset = when the CRD exists)", parse=parse_bool
    )
    enable_csr_watch: bool | None = setting(
        "ENABLE_CSR_WATCH", None, "watch ClusterServingRuntimes (unset = when the CRD exists)", parse=parse_bool
    )
    enable_secret_watch: bool | None = setting(
        "ENABLE_SECRET_WATCH", None, "watch Secrets (unset = when access exists)", parse=parse_bool
    )
    metrics_port: int = setting("METRICS_PORT", 8080, "controller metrics", check=port)
    health_port: int = setting("HEALTH_PROBE_PORT", 8081, "/healthz and /readyz", check=port)
    webhook_port: int = setting("WEBHOOK_PORT", 9443, "validating admission webhook (TLS)", check=port)
    webhook_cert_dir: str = setting("WEBHOOK_CERT_DIR", "/tmp/k8s-webhook-server/serving-certs", "tls.crt and tls.key")
    leader_elect: bool = setting("LEADER_ELECT", True, "take the Lease before reconciling", parse=parse_bool)
    config_defaults_file: str = setting(
        "CONFIG_DEFAULTS_FILE", "", f"the defaults under model-serving-config, read at start (ours; default: "
        f"{DEFAULTS_FILE} when present, where the reference reads the mounted model-serving-config-defaults)")
    watch_mesh_tables: bool = setting(
        "MESH_TABLE_WATCH", True, "watch the mesh's etcd tables for load results (else poll the mesh)",
        parse=parse_bool,
    )

    def webhook_identity(self) -> TlsIdentity | None:
        """The webhook's certificate: None when the cert dir holds neither file (webhook off);
        one without the other, or an unusable one, is an error."""
        directory = Path(self.webhook_cert_dir)
        cert, key = directory / "tls.crt", directory / "tls.key"
        return load_identity(str(cert) if cert.exists() else "", "WEBHOOK_CERT_DIR (tls.crt)",
                             str(key) if key.exists() else "", "WEBHOOK_CERT_DIR (tls.key)")

    def validate(self) -> None:
        self.webhook_identity()

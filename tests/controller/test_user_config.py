"""model-serving-config parsing: defaults, case-insensitive keys, clear errors; the mounted
defaults file (model-serving-config-defaults) between the built-in values and the user's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelmesh.controller import user_config
from modelmesh.controller.user_config import DEFAULTS, ConfigError, ControllerConfig, load_defaults_file


def test_defaults_match_the_reference():
    c = ControllerConfig.defaults()
    assert (c.pods_per_runtime, c.headless_service) == (2, True)
    assert (c.service_name, c.service_port) == ("modelmesh-serving", 8033)
    assert (c.storage_secret_name, c.grpc_max_message_size, c.allow_any_pvc) == ("storage-config", 16777216, False)
    assert (c.metrics_enabled, c.metrics_port, c.metrics_scheme) == (True, 2112, "https")
    assert (c.scale_to_zero, c.scale_to_zero_grace_s) == (True, 60)
    assert (c.rest_proxy_enabled, c.rest_proxy_port) == (True, 8008)
    assert c.rest_proxy_resources == {"requests": {"cpu": "50m", "memory": "96Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}
    assert c.modelmesh_resources == {"requests": {"cpu": "300m", "memory": "448Mi"},
                                     "limits": {"cpu": "3", "memory": "448Mi"}}
    assert c.builtin_server_types == ("triton", "mlserver", "ovms", "torchserve")


def test_keys_are_case_insensitive_and_merge_with_defaults():
    c = ControllerConfig.from_yaml("podsperruntime: 1\nScaleToZero:\n  GRACEPERIODSECONDS: 5\n"
                                   "restproxy: {ENABLED: false}\nmodelMeshEndpoint: 127.0.0.1:1\n")
    assert (c.pods_per_runtime, c.scale_to_zero_grace_s, c.scale_to_zero) == (1, 5, True)
    assert not c.rest_proxy_enabled and c.rest_proxy_port == 8008
    assert c.modelmesh_endpoint == "127.0.0.1:1"


@pytest.mark.parametrize("text,needle", [
    ("podsPerRuntime: many", "podsPerRuntime: expected an integer"),
    ("metrics: {port: 70000}", "metrics.port"),
    ("metrics: {scheme: ftp}", "metrics.scheme"),
    ("payloadProcessors: ['a b']", "payloadProcessors"),
    ("tls: {clientAuth: maybe}", "tls.clientAuth"),
    ("restProxy: 3", "restProxy: expected a map"),
    ("[1, 2]", "must be a map"),
    ("a: [", "not valid YAML"),
])
def test_invalid_values_are_named(text, needle):
    with pytest.raises(ConfigError) as e:
        ControllerConfig.from_yaml(text)
    assert needle in str(e.value)


# --- the mounted defaults file (model-serving-config-defaults) ------------------------------

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config-defaults.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_file_sits_between_the_built_in_values_and_the_user_config(tmp_path):
    path = _write(tmp_path, """
PODSPERRUNTIME: 3
modelmeshimage: {NAME: registry.example/team/modelmesh, tag: "2.0"}
restProxy:
  resources: {requests: {cpu: 20m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}
scaleToZero: {Enabled: false}
""")
    defaults = load_defaults_file(path)
    base = ControllerConfig.defaults(defaults)
    assert base.pods_per_runtime == 3 and not base.scale_to_zero
    assert base.scale_to_zero_grace_s == 60  # left out of the file: built in
    assert base.modelmesh_image.ref == "registry.example/team/modelmesh:2.0"
    assert base.modelmesh_image.command == ("modelmesh", "runtime", "mesh")  # built-in command kept
    assert base.rest_proxy_resources == {"requests": {"cpu": "20m", "memory": "64Mi"},
                                         "limits": {"cpu": "500m", "memory": "128Mi"}}
    assert base.modelmesh_resources == DEFAULTS["modelMeshResources"]
    user = ControllerConfig.from_yaml("podsPerRuntime: 1\nmodelMeshImage: {tag: '2.1'}\n", defaults)
    assert user.pods_per_runtime == 1 and not user.scale_to_zero  # the user's value wins; the file's stays
    assert user.modelmesh_image.ref == "registry.example/team/modelmesh:2.1"
    # No user ConfigMap (deleted): the file's defaults, not the built-in ones.
    assert ControllerConfig.from_yaml(None, defaults).pods_per_runtime == 3
    assert DEFAULTS["podsPerRuntime"] == 2  # the built-in table itself is untouched


def test_a_user_tag_clears_a_digest_the_defaults_pin(tmp_path):
    """As the reference's clearDigestIfTagsDiffer: the defaults pin an image by digest, a user
    who sets another tag gets that tag (unless they also set a digest)."""
    defaults = load_defaults_file(_write(tmp_path, f"modelMeshImage: {{tag: '2.0', digest: '{DIGEST}'}}\n"
                                                   f"restProxy: {{image: {{digest: '{DIGEST}'}}}}\n"))
    assert ControllerConfig.defaults(defaults).modelmesh_image.ref == f"modelmesh@{DIGEST}"
    assert ControllerConfig.from_yaml("modelMeshImage: {tag: '2.1'}", defaults).modelmesh_image.ref == "modelmesh:2.1"
    assert ControllerConfig.from_yaml("modelMeshImage: {tag: '2.0'}", defaults).modelmesh_image.ref == \
        f"modelmesh@{DIGEST}"  # same tag: the digest stays
    other = "sha256:" + "cd" * 32
    assert ControllerConfig.from_yaml(f"modelMeshImage: {{tag: '2.1', digest: '{other}'}}",
                                      defaults).modelmesh_image.ref == f"modelmesh@{other}"
    assert ControllerConfig.from_yaml("restProxy: {image: {tag: x}}", defaults).rest_proxy_image.ref == "modelmesh:x"


def test_the_shipped_defaults_file_is_the_built_in_values():
    shipped = ROOT / "deploy" / "config-defaults" / "config-defaults.yaml"
    assert load_defaults_file(str(shipped)) == DEFAULTS


def test_no_file_at_the_mount_path_means_the_built_in_values(tmp_path, monkeypatch):
    monkeypatch.setattr(user_config, "DEFAULTS_FILE", str(tmp_path / "absent" / "config-defaults.yaml"))
    assert load_defaults_file("") == DEFAULTS
    monkeypatch.setattr(user_config, "DEFAULTS_FILE", _write(tmp_path, "podsPerRuntime: 5\n"))
    assert load_defaults_file("")["podsPerRuntime"] == 5  # the mount path is read when it is there


def test_a_defaults_file_shaped_like_the_references_loads(tmp_path):
    """Its images name no digest and some no command: the built-in command stays where it gives
    none; storageHelperImage's own command replaces ours."""
    defaults = load_defaults_file(_write(tmp_path, """
podsPerRuntime: 2
modelMeshImage: {name: kserve/modelmesh, tag: latest}
restProxy: {enabled: true, port: 8008, image: {name: kserve/rest-proxy, tag: latest}}
storageHelperImage: {name: kserve/modelmesh-runtime-adapter, tag: latest, command: ["/opt/app/puller"]}
serviceAccountName: ""
metrics: {enabled: true}
builtInServerTypes: [triton, mlserver, ovms, torchserve]
"""))
    c = ControllerConfig.defaults(defaults)
    assert c.modelmesh_image.ref == "kserve/modelmesh:latest" and c.modelmesh_image.command[0] == "modelmesh"
    assert c.rest_proxy_image.ref == "kserve/rest-proxy:latest"
    assert c.storage_helper_image.command == ("/opt/app/puller",)


@pytest.mark.parametrize("text,needle", [
    ("podsPerRuntime: [", "not valid YAML: line 1 column"),
    ("- a\n- b\n", "must be a map"),
    ("podsPerRuntime: many", "podsPerRuntime: expected an integer"),
    ("restProxy: {port: 0}", "restProxy.port: expected a port number"),
    ("modelMeshImage: 7", "modelMeshImage: expected a map"),
])
def test_a_broken_defaults_file_is_one_line_naming_the_file(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_defaults_file(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and needle in message and "\n" not in message, message
    with pytest.raises(ConfigError, match="no such file"):
        load_defaults_file(str(tmp_path / "missing.yaml"))  # given explicitly: it must be there


def _controller_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    full.update(env, PYTHONPATH=str(ROOT), KUBECONFIG=os.devnull, LEADER_ELECT="false")
    return subprocess.run([sys.executable, "-m", "modelmesh.cli", "controller"], env=full, check=False,
                          capture_output=True, text=True, timeout=60)


def test_the_controller_does_not_start_with_a_broken_defaults_file(tmp_path):
    for text in ("modelMeshImage: {tag: [1, 2]}\n", "a: [\n"):
        path = _write(tmp_path, text)
        r = _controller_cli({"CONFIG_DEFAULTS_FILE": path})
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, r.stderr
        assert len(lines) == 1 and path in lines[0] and "model-serving-config-defaults" in lines[0], r.stderr
    r = _controller_cli({"CONFIG_DEFAULTS_FILE": str(tmp_path / "missing.yaml")})
    assert r.returncode == 2 and "missing.yaml: no such file" in r.stderr, r.stderr


def test_defaults_are_not_shared_between_loads(tmp_path):
    path = _write(tmp_path, "runtimePodLabels: {team: a}\n")
    first = load_defaults_file(path)
    first["runtimePodLabels"]["team"] = "changed"
    assert load_defaults_file(path)["runtimePodLabels"] == {"team": "a"}
    assert DEFAULTS["runtimePodLabels"] == {}

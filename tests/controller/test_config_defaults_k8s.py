"""The mounted defaults file (ConfigMap model-serving-config-defaults) reaches the runtime
Deployment the controller applies on the real kube-apiserver: its values over the built-in ones,
the user's model-serving-config over both."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from controller_helpers import eventually, runtime_doc, start_controller

from modelmesh.controller.kube import DEPLOYMENT
from modelmesh.controller.user_config import DEFAULTS

NS = "config-defaults-ns"
DEP = "modelmesh-serving-mlserver-1.x"
DIGEST = "sha256:" + "5e" * 32

# What a platform team writes into model-serving-config-defaults (keys in any case, as viper).
PLATFORM_DEFAULTS = {
    "podsperruntime": 3,
    "scaleToZero": {"enabled": False},
    "modelMeshImage": {"name": "registry.example/platform/modelmesh", "tag": "2.0", "digest": DIGEST},
    "storageHelperImage": {"name": "registry.example/platform/modelmesh", "tag": "2.0"},
    "RESTPROXY": {"resources": {"requests": {"cpu": "20m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "128Mi"}}},
    "runtimePodLabels": {"team": "platform"},
}


@pytest.fixture(scope="module")
async def env(kube, mesh_endpoint, tmp_path_factory):
    mount = tmp_path_factory.mktemp("etc-model-serving-config-default")
    defaults_file = Path(mount) / "config-defaults.yaml"
    defaults_file.write_text(yaml.safe_dump(PLATFORM_DEFAULTS))
    # The user's ConfigMap sets another helper tag (its digest-free image follows the user's tag).
    user = {"modelMeshEndpoint": mesh_endpoint, "storageHelperImage": {"tag": "2.1"}}
    controller = await start_controller(kube, NS, user, CONFIG_DEFAULTS_FILE=str(defaults_file))
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    yield kube, controller
    await controller.stop()


async def test_defaults_file_values_reach_the_runtime_deployment(env):
    kube, controller = env

    async def deployment():
        dep = await kube.get(DEPLOYMENT, DEP, NS)
        return dep if dep and dep["spec"].get("replicas") == 3 else None

    dep = await eventually(deployment, 30, "runtime Deployment with the file's podsPerRuntime (3), not scaled to 0")
    pod = dep["spec"]["template"]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    # From the file: the mesh image pinned by digest, its built-in command kept (the file gives none).
    assert containers["mm"]["image"] == f"registry.example/platform/modelmesh@{DIGEST}"
    assert containers["mm"]["command"] == DEFAULTS["modelMeshImage"]["command"]
    assert containers["rest-proxy"]["resources"] == {"requests": {"cpu": "20m", "memory": "64Mi"},
                                                     "limits": {"cpu": "500m", "memory": "128Mi"}}
    assert pod["metadata"]["labels"]["team"] == "platform"
    # From the user's ConfigMap, over the file: the helper's tag.
    assert containers["mlserver-adapter"]["image"] == "registry.example/platform/modelmesh:2.1"
    # Left out of the file: built in.
    assert containers["mm"]["resources"] == DEFAULTS["modelMeshResources"]
    assert containers["rest-proxy"]["image"].startswith("modelmesh:")
    assert controller.ctx.config.pods_per_runtime == 3 and not controller.ctx.config.scale_to_zero

"""Fixtures of the controller tests: the real kube-apiserver with our CRDs installed, the
mesh endpoint the controller dials, and a controller running in-process per test module."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import yaml
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from controller_helpers import eventually
from standin_mesh import StandInMesh

from modelmesh.controller.kube import CRD, KubeApi
from modelmesh.protos import model_mesh_pb2_grpc as mm_grpc

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"


@pytest.fixture(scope="session")
async def kube(kube_apiserver) -> KubeApi:
    """KubeApi on the real kube-apiserver 1.20, with deploy/crds installed and established."""
    api_client = await k8s_config.new_client_from_config(config_file=str(kube_apiserver.kubeconfig))
    api = KubeApi(api_client, field_manager="modelmesh-test")
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        names.append(doc["metadata"]["name"])
        try:
            await api.create(CRD, doc)
        except ApiException as e:
            if e.status != 409:
                raise

    async def established() -> bool:
        for name in names:
            crd = await api.get(CRD, name)
            conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conds.get("Established") != "True":
                return False
        return True

    await eventually(established, 30, "CRDs established")
    yield api
    await api_client.close()


@pytest.fixture(scope="session")
async def mesh_standin() -> StandInMesh:
    """STAND-IN mesh (see standin_mesh.py) on a free loopback port."""
    servicer = StandInMesh()
    server = grpc.aio.server()
    mm_grpc.add_ModelMeshServicer_to_server(servicer, server)
    servicer.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer
    await server.stop(0)


@pytest.fixture(scope="session")
def mesh_endpoint(mesh_standin) -> str:
    """The gRPC target the controller uses as its mesh (config modelMeshEndpoint). Swap this
    fixture for a real mesh's address to run these tests against real mesh processes."""
    return f"127.0.0.1:{mesh_standin.port}"

"""With `tls.secretName` (and clientAuth require) the controller talks to the mesh over TLS,
presenting the secret's certificate: the stand-in mesh here only accepts TLS clients with a
certificate it trusts."""

from __future__ import annotations

import base64

import grpc
import pytest
from controller_helpers import StatusHistory, ensure_namespace, predictor_state, runtime_doc, start_controller
from standin_mesh import StandInMesh

from modelmesh.controller.kube import PREDICTOR
from modelmesh.observability.tls import self_signed_pair
from modelmesh.protos import model_mesh_pb2 as mm
from modelmesh.protos import model_mesh_pb2_grpc as mm_grpc

NS = "tls-ns"


@pytest.fixture(scope="module")
async def env(kube, tmp_path_factory):
    cert, key = self_signed_pair(tmp_path_factory.mktemp("mesh-tls"), "127.0.0.1")
    mesh = StandInMesh()  # STAND-IN mesh, TLS with required client certificates
    server = grpc.aio.server()
    mm_grpc.add_ModelMeshServicer_to_server(mesh, server)
    creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())],
                                        root_certificates=cert.read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    await ensure_namespace(kube, NS)
    await kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mm-tls", "namespace": NS},
                      "type": "kubernetes.io/tls",
                      "data": {"tls.crt": base64.b64encode(cert.read_bytes()).decode(),
                               "tls.key": base64.b64encode(key.read_bytes()).decode()}})
    controller = await start_controller(kube, NS, {
        "modelMeshEndpoint": f"127.0.0.1:{port}", "tls": {"secretName": "mm-tls", "clientAuth": "require"}})
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    preds = await StatusHistory(kube, PREDICTOR, NS, predictor_state).start()
    yield kube, mesh, preds, port, cert
    await preds.stop()
    await controller.stop()
    await server.stop(0)


async def test_registers_over_mutual_tls(env):
    kube, mesh, preds, port, cert = env
    # The server really refuses a client without a certificate.
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(cert.read_bytes())) as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await mm_grpc.ModelMeshStub(ch).getVModelStatus(
                mm.GetVModelStatusRequest(vModelId="x"),
                timeout=5)
    await kube.apply({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
                      "metadata": {"name": "tls-pred", "namespace": NS},
                      "spec": {"modelType": {"name": "sklearn"}, "storage": {"path": "m"}}})
    obj = await preds.reaches("tls-pred", ("Loading", "", "UpToDate", True))
    assert obj["status"]["httpEndpoint"].startswith("https://")
    mesh.complete(mesh.target_of("tls-pred"))
    await preds.reaches("tls-pred", ("Loaded", "", "UpToDate", True))

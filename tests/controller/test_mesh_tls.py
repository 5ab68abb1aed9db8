"""With `tls.secretName` (and clientAuth require) the controller talks to the mesh over TLS,
presenting the secret's certificate: the stand-in mesh here only accepts TLS clients with a
certificate it trusts."""

from __future__ import annotations

import base64

import grpc
import pytest
from controller_helpers import (
    StatusHistory,
    ensure_namespace,
    eventually,
    predictor_state,
    runtime_doc,
    start_controller,
)
from standin_mesh import StandInMesh

from modelmesh.controller.kube import DEPLOYMENT, PREDICTOR, SECRET, SERVING_RUNTIME
from modelmesh.observability.tls import self_signed_pair
from modelmesh.protos import model_mesh_pb2 as mm
from modelmesh.protos import model_mesh_pb2_grpc as mm_grpc

NS = "tls-ns"


DEP = "modelmesh-serving-mlserver-1.x"
TLS_DIR = "/opt/kserve/mmesh/tls"


def tls_secret(cert, key, with_ca: bool = False) -> dict:
    """The TLS secret, without ca.crt (a self-signed certificate) or with one."""
    data = {"tls.crt": cert.read_bytes(), "tls.key": key.read_bytes()}
    if with_ca:
        data["ca.crt"] = cert.read_bytes()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mm-tls", "namespace": NS},
            "type": "kubernetes.io/tls", "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


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
    await kube.apply(tls_secret(cert, key))
    controller = await start_controller(kube, NS, {
        "modelMeshEndpoint": f"127.0.0.1:{port}", "tls": {"secretName": "mm-tls", "clientAuth": "require"}})
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    preds = await StatusHistory(kube, PREDICTOR, NS, predictor_state).start()
    yield kube, mesh, preds, port, cert, key, controller
    await preds.stop()
    await controller.stop()
    await server.stop(0)


async def test_registers_over_mutual_tls(env):
    kube, mesh, preds, port, cert, _, _ = env
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


async def trust_paths(kube, name=DEP) -> dict[str, str] | None:
    """MM_TLS_TRUST_CERT_PATH per TLS container of the runtime's Deployment."""
    dep = await kube.get(DEPLOYMENT, name, NS)
    if dep is None:
        return None
    return {c["name"]: e["value"] for c in dep["spec"]["template"]["spec"]["containers"]
            for e in c.get("env") or [] if e["name"] == "MM_TLS_TRUST_CERT_PATH"}


async def test_trust_path_follows_the_tls_secret(env):
    """Secret without ca.crt: only our own certificate is trusted; ca.crt added: both, and
    the Deployment is re-rendered on the secret's change; ca.crt removed: back again."""
    kube, _, _, _, cert, key, _ = env
    own, both = f"{TLS_DIR}/tls.crt", f"{TLS_DIR}/tls.crt,{TLS_DIR}/ca.crt"

    async def trust_is(value):
        return await trust_paths(kube) == {"rest-proxy": value, "mm": value}

    await eventually(lambda: trust_is(own), what="trust of a secret without ca.crt")
    await kube.apply(tls_secret(cert, key, with_ca=True))
    await eventually(lambda: trust_is(both), what="trust after ca.crt was added")
    await kube.apply(tls_secret(cert, key))
    await eventually(lambda: trust_is(own), what="trust after ca.crt was removed")


async def test_missing_tls_secret_is_retried_and_deploys_once_created(env):
    """As the reference: no TLS secret is a reconcile error (retried with backoff), no
    Deployment; once the secret exists the runtime is deployed."""
    kube, _, _, _, cert, key, controller = env
    errors = controller._metrics.runs.labels("runtime", "error")
    before = errors._value.get()
    await kube.delete(SECRET, "mm-tls", NS)
    doc = runtime_doc("mlserver-1.x", NS)
    doc["metadata"]["name"] = "no-secret-rt"
    await kube.apply(doc)
    try:
        await eventually(lambda: errors._value.get() >= before + 2, what="failed, retried reconciles")
        assert await kube.get(DEPLOYMENT, "modelmesh-serving-no-secret-rt", NS) is None
    finally:
        await kube.apply(tls_secret(cert, key, with_ca=True))
    trust = await eventually(lambda: trust_paths(kube, "modelmesh-serving-no-secret-rt"), what="deployed")
    assert set(trust.values()) == {f"{TLS_DIR}/tls.crt,{TLS_DIR}/ca.crt"}
    await kube.delete(SERVING_RUNTIME, "no-secret-rt", NS)

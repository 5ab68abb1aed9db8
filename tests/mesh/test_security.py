"""Runtime-pod security with real mesh processes: with TLS configured nobody without a
certificate the mesh trusts reaches a model, on the external port or the internal (peer) one;
peers holding the shared certificate keep forwarding and fail over; and ids that cannot be
file names are refused where they enter."""

from __future__ import annotations

import asyncio
import http.client
import os
import ssl
import sys
import urllib.error
import urllib.request

import grpc
import orjson
import pytest
from harness.mesh_client import Client, infer_request, model_info
from harness.pki import MESH_DNS_NAME, make_mesh_pki
from harness.process import ManagedProcess, free_port, port_open

from modelmesh.protos import model_mesh_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub

INFER = "/inference.GRPCInferenceService/ModelInfer"
ENSURE_LOADED = "/mmesh.ModelMesh/ensureLoaded"
NAME = [("grpc.ssl_target_name_override", MESH_DNS_NAME)]


class TlsClient(Client):
    """The harness client (same stubs and helpers) on a TLS channel."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials) -> None:
        self.channel = grpc.aio.secure_channel(target, credentials, options=NAME)
        self.mesh, self.v2 = ModelMeshStub(self.channel), GRPCInferenceServiceStub(self.channel)


async def _refused(target: str, credentials: grpc.ChannelCredentials | None, method: str, model_id: str) -> None:
    """A call on `target` with `credentials` (None: plaintext) must not get through."""
    channel = (grpc.aio.secure_channel(target, credentials, options=NAME) if credentials
               else grpc.aio.insecure_channel(target))
    async with channel:
        if method == INFER:
            payload, meta = infer_request().SerializeToString(), [("mm-model-id", model_id)]
        else:
            payload, meta = pb.EnsureLoadedRequest(modelId=model_id, sync=True).SerializeToString(), []
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await channel.unary_unary(method)(payload, metadata=meta, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value  # the handshake fails: no RPC ran


def _tls_env(cert, key, client_auth: str = "", trust: str = "") -> dict[str, str]:
    env = {"MM_TLS_KEY_CERT_PATH": str(cert), "MM_TLS_PRIVATE_KEY_PATH": str(key)}
    if client_auth:
        env |= {"MM_TLS_CLIENT_AUTH": client_auth, "MM_TLS_TRUST_CERT_PATH": trust}
    return env


async def test_client_auth_on_both_ports_peers_forward_and_fail_over(private_etcd, nodes, tmp_path):
    pki = make_mesh_pki(tmp_path / "pki")
    env = _tls_env(pki["mesh.crt"], pki["mesh.key"], "require", str(pki["ca.crt"]))
    a, b = nodes(private_etcd, "sec-a", mesh_env=env), nodes(private_etcd, "sec-b", mesh_env=env)
    ca = pki["ca.crt"].read_bytes()
    trusted = grpc.ssl_channel_credentials(ca, pki["client.key"].read_bytes(), pki["client.crt"].read_bytes())
    ca_only = grpc.ssl_channel_credentials(ca)
    rogue = grpc.ssl_channel_credentials(ca, pki["rogue.key"].read_bytes(), pki["rogue.crt"].read_bytes())
    ca_client, cb_client = TlsClient(a.mesh.target, trusted), TlsClient(b.mesh.target, trusted)
    try:
        await ca_client.mesh.registerModel(pb.RegisterModelRequest(modelId="sec-m", modelInfo=model_info()))
        first = await ca_client.infer("sec-m")
        holder = first.parameters["runtime"].string_param
        other, other_client = (b, cb_client) if holder == "sec-a" else (a, ca_client)
        # Through the instance without the copy: forwarded to its peer over mutual TLS.
        for _ in range(3):
            resp = await other_client.infer("sec-m")
            assert resp.parameters["runtime"].string_param == holder

        for node in (a, b):
            external = node.mesh.target
            internal = f"127.0.0.1:{node.mesh.internal_port}"
            for method in (INFER, ENSURE_LOADED):
                await _refused(internal, None, method, "sec-m")  # plaintext
                await _refused(internal, ca_only, method, "sec-m")  # TLS, no client certificate
                await _refused(internal, rogue, method, "sec-m")  # a certificate nobody trusts
            await _refused(external, None, INFER, "sec-m")
            await _refused(external, ca_only, INFER, "sec-m")
            await _refused(external, rogue, INFER, "sec-m")

        # The holder dies: the survivor fails over (loads its own copy), still over TLS.
        (a if holder == "sec-a" else b).kill()
        resp = await other_client.infer("sec-m", timeout=60)
        assert resp.parameters["runtime"].string_param == other.name
    finally:
        await ca_client.close()
        await cb_client.close()


async def test_self_signed_shared_certificate_without_client_auth(private_etcd, nodes, tmp_path):
    """The secret without a CA and without clientAuth: clients need no certificate on the
    external port, but the internal port still takes only holders of the shared certificate."""
    pki = make_mesh_pki(tmp_path / "pki")
    env = _tls_env(pki["self.crt"], pki["self.key"])
    a, b = nodes(private_etcd, "ss-a", mesh_env=env), nodes(private_etcd, "ss-b", mesh_env=env)
    server_only = grpc.ssl_channel_credentials(pki["self.crt"].read_bytes())
    ca_client, cb_client = TlsClient(a.mesh.target, server_only), TlsClient(b.mesh.target, server_only)
    try:
        await ca_client.mesh.registerModel(pb.RegisterModelRequest(modelId="ss-m", modelInfo=model_info()))
        holder = (await ca_client.infer("ss-m")).parameters["runtime"].string_param
        other_client = cb_client if holder == "ss-a" else ca_client
        assert (await other_client.infer("ss-m")).parameters["runtime"].string_param == holder
        client_of_ca = grpc.ssl_channel_credentials(pki["self.crt"].read_bytes(), pki["client.key"].read_bytes(),
                                                    pki["client.crt"].read_bytes())
        for node in (a, b):
            internal = f"127.0.0.1:{node.mesh.internal_port}"
            await _refused(internal, None, INFER, "ss-m")
            await _refused(internal, server_only, INFER, "ss-m")
            await _refused(internal, client_of_ca, ENSURE_LOADED, "ss-m")  # not the shared certificate
    finally:
        await ca_client.close()
        await cb_client.close()


BAD_IDS = ["a/b", "..", ".", "back\\slash", "line\nbreak", "nul\x00", "del\x7f", "x" * 241, "é" * 121]


async def test_ids_that_cannot_be_file_names_are_refused(etcd, nodes, client_for):
    node = nodes(etcd, "ids")
    c = client_for(node)
    for bad in BAD_IDS:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await c.mesh.registerModel(pb.RegisterModelRequest(modelId=bad, modelInfo=model_info(), loadNow=True))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "modelId" in e.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await c.mesh.setVModel(pb.SetVModelRequest(vModelId=bad, targetModelId="ids-ok", modelInfo=model_info()))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "vModelId" in e.value.details(), bad
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await c.mesh.setVModel(pb.SetVModelRequest(vModelId="ids-v", targetModelId=bad, modelInfo=model_info(),
                                                       autoDeleteTargetModel=True))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "targetModelId" in e.value.details(), bad
        st = await c.mesh.getModelStatus(pb.GetStatusRequest(modelId=bad))
        assert st.status == pb.ModelStatusInfo.NOT_FOUND  # nothing was registered
    assert not (await node.runtime.loaded())["loaded"]
    # The longest allowed id and ordinary punctuation are fine, and serve.
    for good in ("x" * 240, "my-model__isvc-0123abcd.v2:1"):
        await c.mesh.registerModel(pb.RegisterModelRequest(modelId=good, modelInfo=model_info()))
        assert (await c.infer(good)).model_name == good
    vst = await c.mesh.setVModel(pb.SetVModelRequest(vModelId="ids-v", targetModelId="ids-ok", modelInfo=model_info(),
                                                     sync=True))
    assert vst.activeModelId == "ids-ok"


def _https_post(url: str, doc: dict, context: ssl.SSLContext) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=orjson.dumps(doc), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:
        return resp.status, orjson.loads(resp.read())


async def test_rest_proxy_beside_the_mesh_is_no_way_around_client_auth(etcd, nodes, tmp_path):
    """The REST proxy as the controller configures it with tls.clientAuth=require: HTTPS that
    requires a client certificate, and the shared certificate towards the mesh."""
    pki = make_mesh_pki(tmp_path / "pki")
    env = _tls_env(pki["mesh.crt"], pki["mesh.key"], "require", str(pki["ca.crt"]))
    node = nodes(etcd, "sec-rest", mesh_env=env)
    port = free_port()
    # Exactly the env the controller gives the rest-proxy container (no CA path, no skip-verify).
    proxy_env = {**os.environ, **env, "REST_PROXY_LISTEN_HOST": "127.0.0.1", "REST_PROXY_LISTEN_PORT": str(port),
                 "REST_PROXY_GRPC_PORT": str(node.mesh.grpc_port), "REST_PROXY_USE_TLS": "true",
                 "REST_PROXY_SKIP_VERIFY": "false"}
    proc = ManagedProcess("rest-proxy-tls", [sys.executable, "-m", "modelmesh.cli", "runtime", "rest-proxy"],
                          tmp_path / "proxy.log", env=proxy_env)
    proc.start(lambda: port_open(port), timeout=30)
    trusted = TlsClient(node.mesh.target, grpc.ssl_channel_credentials(
        pki["ca.crt"].read_bytes(), pki["client.key"].read_bytes(), pki["client.crt"].read_bytes()))
    try:
        await trusted.mesh.setVModel(pb.SetVModelRequest(vModelId="rest-v", targetModelId="rest-m",
                                                         modelInfo=model_info(), sync=True))
        url = f"https://localhost:{port}/v2/models/rest-v/infer"  # the proxy routes by vmodel
        doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}
        with_cert = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        with_cert.load_cert_chain(str(pki["client.crt"]), str(pki["client.key"]))
        status, reply = await asyncio.to_thread(_https_post, url, doc, with_cert)
        assert status == 200 and reply["outputs"][0]["name"] == "x", reply

        without_cert = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        rogue = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        rogue.load_cert_chain(str(pki["rogue.crt"]), str(pki["rogue.key"]))
        for context in (without_cert, rogue):
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                await asyncio.to_thread(_https_post, url, doc, context)
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # plain HTTP
            await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/v2/models/rest-v", None, 10)
    finally:
        await trusted.close()
        assert proc.stop() == 0, proc.log_tail()

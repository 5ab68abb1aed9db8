"""TLS on the external port, with and without required client certificates."""

import grpc
import pytest

from harness.etcd_secure import make_pki
from harness.mesh_client import infer_request, model_info
from modelmesh.protos import model_mesh_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub


@pytest.mark.parametrize("client_auth", ["none", "require"])
async def test_tls_external_port(etcd, nodes, tmp_path, client_auth):
    pki = make_pki(tmp_path / "pki")
    node = nodes(etcd, f"tls-{client_auth}", mesh_env={
        "MM_TLS_KEY_CERT_PATH": str(pki["server.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(pki["server.key"]),
        "MM_TLS_CLIENT_AUTH": client_auth, "MM_TLS_TRUST_CERT_PATH": str(pki["ca.crt"])})
    ca = pki["ca.crt"].read_bytes()
    with_cert = grpc.ssl_channel_credentials(ca, pki["client.key"].read_bytes(), pki["client.crt"].read_bytes())
    async with grpc.aio.secure_channel(node.mesh.target, with_cert) as ch:
        await ModelMeshStub(ch).registerModel(pb.RegisterModelRequest(modelId="tls-m", modelInfo=model_info()))
        resp = await GRPCInferenceServiceStub(ch).ModelInfer(infer_request(), metadata=[("mm-model-id", "tls-m")],
                                                              timeout=30)
        assert resp.model_name == "tls-m"
    async with grpc.aio.secure_channel(node.mesh.target, grpc.ssl_channel_credentials(ca)) as ch:
        call = ModelMeshStub(ch).getModelStatus(pb.GetStatusRequest(modelId="tls-m"), timeout=10)
        if client_auth == "require":
            with pytest.raises(grpc.aio.AioRpcError) as e:  # no client certificate: refused
                await call
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        else:
            assert (await call).status == pb.ModelStatusInfo.LOADED
    async with grpc.aio.insecure_channel(node.mesh.target) as ch:  # plaintext is not served
        with pytest.raises(grpc.aio.AioRpcError):
            await ModelMeshStub(ch).getModelStatus(pb.GetStatusRequest(modelId="tls-m"), timeout=5)


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "traditional-openssl"])
async def test_tls_with_an_encrypted_private_key(etcd, nodes, tmp_path, traditional):
    """MM_TLS_PRIVATE_KEY_PASSPHRASE: the mesh decrypts an openssl-encrypted key at start and
    serves TLS with it (a real handshake that verifies the certificate, then a load and an
    inference through it)."""
    from harness.pki import encrypt_key_openssl

    pki = make_pki(tmp_path / "pki")
    key = encrypt_key_openssl(pki["server.key"], tmp_path / "pki" / "server-encrypted.key", "a passphrase",
                              traditional=traditional)
    assert b"ENCRYPTED" in key.read_bytes()
    env = {"MM_TLS_KEY_CERT_PATH": str(pki["server.crt"]), "MM_TLS_PRIVATE_KEY_PATH": str(key),
           "MM_TLS_PRIVATE_KEY_PASSPHRASE": "a passphrase", "MM_TLS_TRUST_CERT_PATH": str(pki["ca.crt"])}
    node = nodes(etcd, f"tls-enc-{traditional}", mesh_env=env)
    ca = pki["ca.crt"].read_bytes()
    async with grpc.aio.secure_channel(node.mesh.target, grpc.ssl_channel_credentials(ca)) as ch:
        await ModelMeshStub(ch).registerModel(pb.RegisterModelRequest(modelId="enc-m", modelInfo=model_info()))
        resp = await GRPCInferenceServiceStub(ch).ModelInfer(infer_request(), metadata=[("mm-model-id", "enc-m")],
                                                              timeout=30)
        assert resp.model_name == "enc-m"

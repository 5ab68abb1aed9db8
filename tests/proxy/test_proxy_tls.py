"""TLS on both sides of the proxy, against a real Triton serving gRPC over TLS only:
verified (CA), skip-verify (pinned certificate), a wrong CA and plaintext are refused (503),
and HTTPS on the REST side when MM_TLS_KEY_CERT_PATH / MM_TLS_PRIVATE_KEY_PATH are set."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import orjson
import pytest

from harness.models import triton_python_doubler
from harness.triton_options import TritonWithOptions
from modelmesh.observability.tls import self_signed_pair
from modelmesh.protos import grpc_predict_v2_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

DOC = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1.5, 2]}]}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    good_dir, other_dir = tmp_path_factory.mktemp("tls-good"), tmp_path_factory.mktemp("tls-other")
    cert, key = self_signed_pair(good_dir)
    other_cert, _ = self_signed_pair(other_dir)
    return {"cert": cert, "key": key, "other": other_cert}


@pytest.fixture(scope="module")
def tls_triton(tmp_path_factory, certs) -> Iterator[TritonWithOptions]:
    triton = TritonWithOptions(tmp_path_factory.mktemp("tls-triton"), [
        "--grpc-use-ssl=true", f"--grpc-server-cert={certs['cert']}", f"--grpc-server-key={certs['key']}",
        f"--grpc-root-cert={certs['cert']}",
    ])
    triton.start()
    try:
        triton_python_doubler(triton.repo, "doubler")
        creds = grpc.ssl_channel_credentials(root_certificates=certs["cert"].read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{triton.grpc_port}", creds) as channel:
            GRPCInferenceServiceStub(channel).RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name="doubler"), timeout=120)
        yield triton
    finally:
        triton.stop()


async def _infer(http: aiohttp.ClientSession, url: str, **kw) -> tuple[int, dict]:
    async with http.post(f"{url}/v2/models/doubler/infer", data=orjson.dumps(DOC), **kw) as r:
        return r.status, orjson.loads(await r.read())


@pytest.mark.parametrize("env", [
    {"REST_PROXY_USE_TLS": "true", "REST_PROXY_GRPC_CA_PATH": "{cert}"},
    {"REST_PROXY_USE_TLS": "true", "REST_PROXY_SKIP_VERIFY": "true"},
], ids=["verified", "skip-verify"])
async def test_tls_to_grpc(tls_triton, certs, start_proxy, http, env):
    app = await start_proxy(tls_triton.grpc_port, **{k: v.format(**certs) for k, v in env.items()})
    status, reply = await _infer(http, f"http://127.0.0.1:{app.proxy.port}")
    assert status == 200, reply
    assert reply["outputs"][0]["data"] == [3.0, 4.0]


@pytest.mark.parametrize("env", [
    {"REST_PROXY_USE_TLS": "true", "REST_PROXY_GRPC_CA_PATH": "{other}"},
    {"REST_PROXY_USE_TLS": "false"},
], ids=["wrong-ca", "plaintext"])
async def test_untrusted_or_plaintext_grpc_is_503(tls_triton, certs, start_proxy, http, env):
    app = await start_proxy(tls_triton.grpc_port, **{k: v.format(**certs) for k, v in env.items()})
    status, reply = await _infer(http, f"http://127.0.0.1:{app.proxy.port}")
    assert status == 503, reply
    assert reply["error"]


async def test_https_listener(tls_triton, certs, start_proxy, http):
    app = await start_proxy(tls_triton.grpc_port, REST_PROXY_USE_TLS="true",
                            REST_PROXY_GRPC_CA_PATH=str(certs["cert"]),
                            MM_TLS_KEY_CERT_PATH=str(certs["cert"]), MM_TLS_PRIVATE_KEY_PATH=str(certs["key"]))
    assert app.proxy.scheme == "https"
    client_ctx = ssl.create_default_context(cafile=str(certs["cert"]))
    status, reply = await _infer(http, f"https://127.0.0.1:{app.proxy.port}", ssl=client_ctx)
    assert status == 200, reply
    with pytest.raises(aiohttp.ClientError):
        await _infer(http, f"http://127.0.0.1:{app.proxy.port}")

"""KServe V2 server-level RPCs answered by the mesh itself, and ModelReady routed by the model
name it carries (mesh.md, "Details read from the reference source")."""

import aiohttp
import grpc
import pytest

from harness.mesh_client import model_info
from modelmesh import __version__
from modelmesh.apps.rest_proxy import make_app
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb


async def test_server_level_rpcs_are_answered_by_the_mesh(etcd, nodes, client_for):
    node = nodes(etcd, "v2-server")
    c = client_for(node)
    # No model id anywhere in these requests: the mesh answers them, nothing is routed.
    assert (await c.v2.ServerLive(v2.ServerLiveRequest(), timeout=10)).live
    assert (await c.v2.ServerReady(v2.ServerReadyRequest(), timeout=10)).ready
    meta = await c.v2.ServerMetadata(v2.ServerMetadataRequest(), timeout=10)
    assert (meta.name, meta.version) == ("modelmesh", __version__)
    # Through the REST proxy, as a KServe V2 REST client asks.
    settings = load_settings(RestProxySettings, {"REST_PROXY_LISTEN_HOST": "127.0.0.1", "REST_PROXY_LISTEN_PORT": "0",
                                                 "REST_PROXY_GRPC_PORT": str(node.mesh.grpc_port)})
    proxy = make_app(settings)
    await proxy.start()
    try:
        url = f"http://127.0.0.1:{proxy.proxy.port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for path, expected in (("/v2/health/ready", {"ready": True}), ("/v2/health/live", {"live": True})):
                async with http.get(url + path) as r:
                    assert (r.status, await r.json()) == (200, expected), path
            async with http.get(url + "/v2") as r:
                assert r.status == 200 and (await r.json())["name"] == "modelmesh"
            # ModelReady through the REST proxy: vmodel name in the URL -> mm-vmodel-id.
            await c.mesh.setVModel(pb.SetVModelRequest(vModelId="isvc-r", targetModelId="isvc-r__1",
                                                       modelInfo=model_info(), sync=True))
            async with http.get(url + "/v2/models/isvc-r/ready") as r:
                assert (r.status, await r.json()) == (200, {"name": "isvc-r", "ready": True})
    finally:
        await proxy.stop()


async def test_model_ready_is_routed_by_its_name_field(etcd, nodes, client_for):
    # allowAnyMethod false with methodInfos for ModelInfer/ModelMetadata only, as the
    # built-in adapters report: ModelReady must still reach the runtime.
    node = nodes(etcd, "v2-model-ready", allow_any_method=False)
    c = client_for(node)
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="ready-m", modelInfo=model_info()))
    call = c.v2.ModelReady(v2.ModelReadyRequest(name="ready-m"), timeout=30)  # no mesh header
    assert (await call).ready
    assert dict(await call.initial_metadata())["mm-model-id"] == "ready-m"
    # By a vmodel name: the concrete id is injected into the name field the runtime reads
    # (the test runtime answers NOT_FOUND for a name it has not loaded).
    await c.mesh.setVModel(pb.SetVModelRequest(vModelId="ready-v", targetModelId="ready-m"))
    assert (await c.v2.ModelReady(v2.ModelReadyRequest(name="ready-v"), timeout=30)).ready
    assert (await c.v2.ModelReady(v2.ModelReadyRequest(name="whatever"), metadata=[("mm-vmodel-id", "ready-v")],
                                  timeout=30)).ready
    for request, metadata in ((v2.ModelReadyRequest(name="no-such-model"), ()),
                              (v2.ModelReadyRequest(), (("mm-model-id", "no-such-model"),))):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await c.v2.ModelReady(request, metadata=metadata, timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await c.v2.ModelReady(v2.ModelReadyRequest(), timeout=30)  # no name, no header
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

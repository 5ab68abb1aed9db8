"""Payload processors: copies of inference requests and responses reach an HTTP consumer as
CloudEvents, off the hot path; a consumer that fails never fails inference."""

import asyncio

from aiohttp import web

from harness.mesh_client import infer_request, model_info
from harness.process import free_port
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb


async def test_request_and_response_reach_the_consumer(etcd, nodes, client_for):
    received: list[tuple[dict, bytes]] = []
    arrived = asyncio.Event()

    async def consume(request: web.Request) -> web.Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        if len(received) >= 2:
            arrived.set()
        return web.Response(status=202)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/consumer", consume)
    app.router.add_post("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        node = nodes(etcd, "payloads", mesh_env={
            "MM_PAYLOAD_PROCESSORS": f"http://127.0.0.1:{port}/broken http://127.0.0.1:{port}/consumer logger://"})
        c = client_for(node)
        await c.mesh.setVModel(pb.SetVModelRequest(vModelId="pv", targetModelId="pv__isvc-1", owner="isvc",
                                                   modelInfo=model_info(), sync=True))
        request = infer_request((1.0, 2.0, 3.0))
        # The broken consumer does not affect inference.
        response = await c.v2.ModelInfer(request, metadata=[("mm-vmodel-id", "pv")], timeout=30)
        await asyncio.wait_for(arrived.wait(), 20)
        (req_headers, req_body), (resp_headers, resp_body) = received[:2]
        assert req_headers["ce-type"] == "org.kserve.inference.request"
        assert resp_headers["ce-type"] == "org.kserve.inference.response"
        assert req_headers["ce-id"] == resp_headers["ce-id"]
        assert req_headers["ce-modelid"] == "pv__isvc-1" and req_headers["ce-inferenceservicename"] == "pv"
        assert req_headers["ce-endpoint"] == "/inference.GRPCInferenceService/ModelInfer"
        assert resp_headers["ce-status"] == "OK"
        # The bodies are the messages as they crossed the mesh, undecoded.
        assert v2.ModelInferRequest.FromString(req_body).raw_input_contents == request.raw_input_contents
        assert v2.ModelInferResponse.FromString(resp_body) == response
    finally:
        await runner.cleanup()

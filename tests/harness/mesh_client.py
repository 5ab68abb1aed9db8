"""Client helpers for mesh tests: management API + V2 inference on one channel."""

from __future__ import annotations

import asyncio
import json
import struct

import grpc

from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb
from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from modelmesh.protos.model_mesh_pb2_grpc import ModelMeshStub


def model_info(type_: str = "test", **spec) -> pb.ModelInfo:
    return pb.ModelInfo(type=type_, path="/models/x", key=json.dumps(spec))


def infer_request(values=(1.0, 2.0)) -> v2.ModelInferRequest:
    req = v2.ModelInferRequest(model_name="ignored")
    req.inputs.add(name="x", datatype="FP32", shape=[len(values)])
    req.raw_input_contents.append(struct.pack(f"<{len(values)}f", *values))
    return req


class Client:
    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.mesh = ModelMeshStub(self.channel)
        self.v2 = GRPCInferenceServiceStub(self.channel)

    async def infer(self, model_id: str, vmodel: bool = False, timeout: float = 30, **kw) -> v2.ModelInferResponse:
        header = "mm-vmodel-id" if vmodel else "mm-model-id"
        return await self.v2.ModelInfer(infer_request(), metadata=[(header, model_id)], timeout=timeout, **kw)

    async def close(self) -> None:
        await self.channel.close()


async def register_many(client, ids, **spec):
    sem = asyncio.Semaphore(32)

    async def one(mid):
        async with sem:
            await client.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info(**spec)))

    await asyncio.gather(*(one(m) for m in ids))


async def drive_random_traffic(clients, ids, count, concurrency, rng, progress=None):
    """`count` inferences on random models through random instances; returns failures.
    `progress` (a list) gets one entry per finished request, for tests that act mid-traffic."""
    sem = asyncio.Semaphore(concurrency)
    failures = []
    progress = progress if progress is not None else []

    async def one(i):
        mid = rng.choice(ids)
        async with sem:
            try:
                resp = await rng.choice(clients).infer(mid, timeout=60)
                assert resp.model_name == mid
            except grpc.aio.AioRpcError as e:
                failures.append((mid, e.code().name, e.details()))
            progress.append(mid)

    await asyncio.gather(*(one(i) for i in range(count)))
    return failures

"""Keepalive toward runtimes respects their default ping policy.

gRPC servers (MLServer's grpcio, Triton's C++ gRPC) by default accept no pings on a
connection without calls and none more often than every 5 minutes; a client that pings
more gets GOAWAY too_many_pings. So the mesh sends its runtime none while idle. The test
counts the HTTP/2 PING frames on the wire between a mesh and its runtime over an idle
window longer than any keepalive period a client might use instead (30 s).
"""

import asyncio
import time

from harness.h2_pings import PingCounter
from harness.mesh import MeshProcess
from harness.mesh import TestRuntimeProcess as RuntimeProcess  # (not collected as a test class)
from harness.mesh_client import Client, model_info
from harness.tcp_proxy import TcpProxy
from modelmesh.protos import model_mesh_pb2 as pb

IDLE_WINDOW_S = 40  # the behaviour under test is what happens while time passes
# gRPC follows received data with a BDP probe ping within milliseconds; servers accept those
# (data was just exchanged). Keepalive pings are the ones later than this after the last call.
BDP_PROBE_S = 1.0


async def test_no_pings_to_an_idle_runtime(etcd, tmp_path):
    runtime = RuntimeProcess(tmp_path, "keepalive-rt", 100_000_000).start()
    counter = PingCounter()
    proxy = await TcpProxy(runtime.port, upstream_tap=counter.connection).start()
    mesh = MeshProcess(tmp_path, "keepalive", etcd.endpoint, runtime_port=proxy.port,
                       extra_env={"MM_SERVICE_NAME": "keepalive"})
    client = None
    try:
        await asyncio.to_thread(mesh.start)  # the proxy runs on this loop meanwhile
        client = Client(mesh.target)
        await client.mesh.registerModel(pb.RegisterModelRequest(modelId="ka", modelInfo=model_info()))
        assert (await client.infer("ka")).model_name == "ka"  # SPI and inference connections in use
        idle_from = time.monotonic()
        await asyncio.sleep(IDLE_WINDOW_S)
        late = [round(p - idle_from, 2) for p in counter.pings if p >= idle_from + BDP_PROBE_S]
        assert not late, f"pings to an idle runtime, at {late} s into the idle window"
        assert (await client.infer("ka")).model_name == "ka"  # and the connection still serves
    finally:
        if client is not None:
            await client.close()
        await asyncio.to_thread(mesh.stop)
        await proxy.stop()
        runtime.stop()

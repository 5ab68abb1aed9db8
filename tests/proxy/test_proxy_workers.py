"""REST_PROXY_WORKERS: several proxy processes on one port (SO_REUSEPORT), owned by the first.

The gRPC side is the harness test runtime (V2 ModelInfer that echoes its inputs), so these
tests need no model server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request

import grpc
import orjson
from harness import mesh as mesh_harness
from harness.process import ManagedProcess, free_port, port_open, wait_until

from modelmesh.apps.rest_proxy import settings_env
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import load_settings
from modelmesh.protos import model_runtime_pb2 as rt
from modelmesh.protos.model_runtime_pb2_grpc import ModelRuntimeStub


def listeners(port: int) -> int:
    """LISTEN sockets on 127.0.0.1:port (one per process with SO_REUSEPORT)."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                count += 1
    return count


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_proxy(tmp_path, grpc_port: int, workers: int) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = {**os.environ, "REST_PROXY_LISTEN_HOST": "127.0.0.1", "REST_PROXY_LISTEN_PORT": str(port),
           "REST_PROXY_GRPC_PORT": str(grpc_port), "REST_PROXY_WORKERS": str(workers), "LOG_FORMAT": "json"}
    proc = ManagedProcess("rest-proxy", [sys.executable, "-m", "modelmesh.cli", "runtime", "rest-proxy"],
                          tmp_path / "proxy.log", env=env)
    proc.start(lambda: port_open(port), timeout=30)
    wait_until(lambda: listeners(port) == workers, 30, f"{workers} processes listening on {port}")
    return proc, port


def infer(port: int, values: list[float]) -> list[float]:
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(values)], "data": values}]})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/m/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # a new connection each time
        assert resp.status == 200
        return orjson.loads(resp.read())["outputs"][0]["data"]


async def load_model(runtime_port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime_port}") as ch:
        await ModelRuntimeStub(ch).loadModel(rt.LoadModelRequest(modelId="m", modelType="test", modelKey="{}"))


def test_settings_travel_to_workers_unchanged():
    s = load_settings(RestProxySettings, {"REST_PROXY_WORKERS": "3", "REST_PROXY_ACCESS_LOG": "true",
                                          "REST_PROXY_GRPC_MAX_MSG_SIZE_BYTES": "1234", "LOG_LEVEL": "warning"})
    assert load_settings(RestProxySettings, settings_env(s)) == s


async def test_workers_share_the_port_and_stop_with_the_first(tmp_path):
    runtime = mesh_harness.TestRuntimeProcess(tmp_path, "rt", capacity=10**9).start()
    try:
        await load_model(runtime.port)
        proc, port = start_proxy(tmp_path, runtime.port, workers=3)
        try:
            workers = children(proc.pid)
            assert len(workers) == 2, proc.log_tail()
            for i in range(40):
                assert await asyncio.to_thread(infer, port, [float(i), -1.0]) == [float(i), -1.0]
            # SIGTERM to the first process only: it stops its workers and exits cleanly.
            os.kill(proc.pid, signal.SIGTERM)
            code = await asyncio.to_thread(proc.proc.wait, 30)
            assert code == 0, proc.log_tail()
            wait_until(lambda: not any(alive(w) for w in workers), 10, "workers gone")
            assert listeners(port) == 0
        finally:
            proc.stop()
    finally:
        runtime.stop()


async def test_a_dead_worker_ends_the_proxy(tmp_path):
    runtime = mesh_harness.TestRuntimeProcess(tmp_path, "rt", capacity=10**9).start()
    try:
        await load_model(runtime.port)
        proc, _ = start_proxy(tmp_path, runtime.port, workers=2)
        try:
            [worker] = children(proc.pid)
            os.kill(worker, signal.SIGKILL)
            try:
                code = await asyncio.to_thread(proc.proc.wait, 30)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"proxy still running after its worker died:\n{proc.log_tail()}") from None
            assert code == 1
            assert "exited with code" in proc.log_tail()
        finally:
            proc.stop()
    finally:
        runtime.stop()


async def test_workers_die_with_a_killed_first_process(tmp_path):
    runtime = mesh_harness.TestRuntimeProcess(tmp_path, "rt", capacity=10**9).start()
    try:
        proc, port = start_proxy(tmp_path, runtime.port, workers=2)
        workers = children(proc.pid)
        try:
            os.kill(proc.pid, signal.SIGKILL)  # no chance to stop them: the kernel tells them (PDEATHSIG)
            wait_until(lambda: not any(alive(w) for w in workers), 15, "workers gone after SIGKILL of the first")
            assert listeners(port) == 0
        finally:
            proc.stop()
            for w in workers:
                if alive(w):
                    os.kill(w, signal.SIGKILL)
    finally:
        runtime.stop()

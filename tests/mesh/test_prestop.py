"""The shutdown order of a runtime pod (controller.md, "Hardening and shutdown order"), with
real processes: the test plays the kubelet. The runtime's preStop (GET /prestop) is held
while the mesh, told to stop by its own preStop (the image's stop.sh), hands its models to
another pod; meanwhile the runtime keeps answering. The hook returns only once the models are
elsewhere and the mesh has unloaded its copies from the runtime, i.e. when the runtime may go."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from harness.mesh_client import model_info
from harness.process import free_port, wait_for
from modelmesh.mesh.prestop import PreStopGate, is_loopback
from modelmesh.protos import model_mesh_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
STOP_SCRIPT = ROOT / "scripts" / "mesh-stop.sh"  # /opt/kserve/mmesh/stop.sh in the image


def _hook_env(port: int) -> dict[str, str]:
    """The mesh container's env, as the exec hook sees it; `modelmesh` on PATH as in the image."""
    return {**os.environ, "MM_PRESTOP_WAIT_PORT": str(port), "PYTHONPATH": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def _runtime_prestop(port: int) -> int:
    """The kubelet's httpGet hook of the runtime container."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/prestop", timeout=120) as resp:
        return resp.status


async def test_runtime_outlives_the_hand_off(etcd, nodes, client_for):
    a, b = nodes(etcd, "ps-a"), nodes(etcd, "ps-b")
    ca, cb = client_for(a), client_for(b)
    ids = ["ps-1", "ps-2"]
    for mid in ids:  # slow loads: the hand-off to b takes a while
        await ca.mesh.registerModel(pb.RegisterModelRequest(modelId=mid, modelInfo=model_info(load_ms=1500)))
        await ca.infer(mid)  # loads on a (local preference)
    assert set((await a.runtime.loaded())["loaded"]) == set(ids)

    # Pod a is deleted: the kubelet runs every container's preStop at once.
    loop = asyncio.get_running_loop()
    runtime_hook = loop.run_in_executor(None, _runtime_prestop, a.mesh.prestop_port)
    mesh_hook = await asyncio.create_subprocess_exec("sh", str(STOP_SCRIPT), "wait", env=_hook_env(a.mesh.prestop_port),
                                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # While the mesh hands off, the runtime (still running: its hook has not returned) answers.
    answered_during_hand_off = 0
    while not runtime_hook.done() and answered_during_hand_off < 3:
        try:
            reply = await ca.infer(ids[0], timeout=5)
        except Exception:  # noqa: BLE001 - the mesh stops taking requests once the hand-off is done
            break
        assert reply.parameters["runtime"].string_param == "ps-a"
        answered_during_hand_off += 1
    assert answered_during_hand_off >= 1 and not runtime_hook.done()

    assert await asyncio.wait_for(runtime_hook, 60) == 200
    # Released only once b holds every model and a has unloaded its copies from its runtime,
    # which was still there to do it (it answers this, too).
    assert set((await b.runtime.loaded())["loaded"]) >= set(ids)
    assert not (await a.runtime.loaded())["loaded"]

    out, _ = await asyncio.wait_for(mesh_hook.communicate(), 60)
    assert mesh_hook.returncode == 0, out
    # The mesh exits by itself after its preStop (the kubelet's SIGTERM would find it gone).
    await wait_for(lambda: not a.mesh.proc.alive(), 30, "mesh exit")
    assert a.mesh.proc.proc.returncode == 0
    a.runtime.stop()  # now the kubelet stops the runtime container

    loads_before = (await b.runtime.loaded())["loads"]
    for mid in ids:
        assert (await cb.infer(mid)).parameters["runtime"].string_param == "ps-b"
    assert (await b.runtime.loaded())["loads"] == loads_before  # handed off before a left: no reload


def test_stop_without_a_mesh_is_not_an_error():
    port = free_port()
    result = subprocess.run(["sh", str(STOP_SCRIPT), "wait"], env=_hook_env(port), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "nothing to stop" in result.stderr


async def test_gate_holds_until_released_and_stop_is_for_the_pod_only():
    stops = []
    gate = PreStopGate(0, lambda: stops.append(1), max_hold_s=30, host="127.0.0.1")
    await gate.start()
    base = f"http://127.0.0.1:{gate.port}"
    try:
        async with aiohttp.ClientSession() as http:
            held = asyncio.ensure_future(http.get(f"{base}/prestop"))
            stop_wait = asyncio.ensure_future(http.post(f"{base}/stop?wait=true"))
            await wait_for(lambda: gate.held == 2, 10, "both requests held")
            assert stops == [1] and not held.done() and not stop_wait.done()
            async with http.post(f"{base}/stop") as resp:  # without wait: answered at once
                assert resp.status == 202
            gate.release()
            for fut in (held, stop_wait):
                resp = await asyncio.wait_for(fut, 10)
                assert resp.status == 200
                resp.release()
            async with http.get(f"{base}/prestop") as resp:  # after the release: no wait
                assert resp.status == 200
    finally:
        await gate.stop()


async def test_gate_hold_is_bounded():
    gate = PreStopGate(0, lambda: None, max_hold_s=0.3, host="127.0.0.1")
    await gate.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{gate.port}/prestop") as resp:
            assert resp.status == 200
    finally:
        await gate.stop()


@pytest.mark.parametrize("peer, ok", [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True),
                                      ("::ffff:127.0.0.1", True), ("10.1.2.3", False), ("::ffff:10.0.0.1", False),
                                      ("fe80::1%eth0", False), (None, False), ("garbage", False)])
def test_only_loopback_peers_may_stop(peer, ok):
    assert is_loopback(peer) is ok


async def test_meshes_side_by_side_share_the_default_prestop_port(etcd, nodes, client_for):
    """The launch contract lets several meshes run on one host without naming
    MM_PRESTOP_WAIT_PORT (8090 for all): the first serves the gate, the others start and serve
    without it (a warning, not an exit)."""
    port = free_port()
    a = nodes(etcd, "pp-a", mesh_env={"MM_PRESTOP_WAIT_PORT": str(port)})
    b = nodes(etcd, "pp-b", mesh_env={"MM_PRESTOP_WAIT_PORT": str(port)})
    await client_for(a).mesh.registerModel(pb.RegisterModelRequest(modelId="pp-1", modelInfo=model_info()))
    reply = await client_for(b).infer("pp-1")
    assert reply.parameters["runtime"].string_param in ("pp-a", "pp-b")
    assert "preStop gate not served" in b.mesh.log_path.read_text()
    # a serves the gate: /prestop is held while a runs (a refused connection would not time out).
    async with aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.get(f"http://127.0.0.1:{port}/prestop", timeout=aiohttp.ClientTimeout(total=0.5))

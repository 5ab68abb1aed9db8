"""tc-config (type constraints, data-plane config) changes take effect without a restart, and
bad JSON in them is a settings error naming the variable (exit 2, one line)."""

import json
import os
import subprocess
import sys
import time

import grpc
import pytest

from harness.mesh import ROOT
from harness.process import wait_until
from harness.mesh_client import model_info
from modelmesh.protos import grpc_predict_v2_pb2 as v2
from modelmesh.protos import model_mesh_pb2 as pb


def write_atomically(path, doc) -> None:
    """As the kubelet updates a mounted ConfigMap: a new file swapped in."""
    tmp = path.with_suffix(".new")
    tmp.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    os.replace(tmp, path)


async def until_ok(call, timeout_s: float = 20):
    """Retry `call()` until it succeeds (the file is re-read within seconds); its last error otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise


async def _code(coro) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await coro
    return e.value.code()


async def test_tc_config_changes_take_effect_without_a_restart(etcd, nodes, client_for, tmp_path):
    constraints, dataplane = tmp_path / "type_constraints", tmp_path / "dataplane_api_config"
    write_atomically(constraints, {"test": {"required": ["rt:test"]}, "_default": {"required": ["_no_runtime"]}})
    write_atomically(dataplane, {"rpcConfigs": {"inference.GRPCInferenceService/ModelInfer": {}}})
    node = nodes(etcd, "tc-reload", mesh_env={"MM_LABELS": "rt:test,mt:new", "MM_TYPE_CONSTRAINTS_PATH": str(constraints),
                                              "MM_DATAPLANE_CONFIG_PATH": str(dataplane)})
    c = client_for(node)
    # A type the constraints do not name falls to _default, which no runtime satisfies.
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="tc-new", modelInfo=model_info(type_="new")))
    assert await _code(c.infer("tc-new")) == grpc.StatusCode.UNAVAILABLE
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="tc-m", modelInfo=model_info()))
    metadata = lambda: c.v2.ModelMetadata(v2.ModelMetadataRequest(name="tc-m"), timeout=30)  # noqa: E731
    assert await _code(metadata()) == grpc.StatusCode.UNIMPLEMENTED  # not in rpcConfigs

    # The controller added a runtime type and let other RPCs through.
    write_atomically(constraints, {"test": {"required": ["rt:test"]}, "new": {"required": ["mt:new"]},
                                   "_default": {"required": ["_no_runtime"]}})
    write_atomically(dataplane, {"rpcConfigs": {"inference.GRPCInferenceService/ModelInfer": {}},
                                 "allowOtherRpcs": True})
    assert (await until_ok(lambda: c.infer("tc-new"))).model_name == "tc-new"
    assert (await until_ok(metadata)).name == "tc-m"

    # A broken update is ignored: the previous config stays in force.
    write_atomically(constraints, "{not json")
    write_atomically(dataplane, '{"rpcConfigs": {"x/y": {"idExtractionPath": [0]}}}')
    log = tmp_path / "mesh-tc-reload.log"
    wait_until(lambda: log.read_text().count("cannot be used; keeping the previous one") == 2, timeout=20,
               what="the mesh to refuse both broken files")
    await c.mesh.registerModel(pb.RegisterModelRequest(modelId="tc-new-2", modelInfo=model_info(type_="new")))
    assert (await c.infer("tc-new-2")).model_name == "tc-new-2"
    assert (await metadata()).name == "tc-m"


@pytest.mark.parametrize("env, variable", [
    ({"MM_TYPE_CONSTRAINTS": "{not json"}, "MM_TYPE_CONSTRAINTS"),
    ({"MM_DATAPLANE_CONFIG": '["a list"]'}, "MM_DATAPLANE_CONFIG"),
    ({"MM_DATAPLANE_CONFIG": '{"rpcConfigs": {"a/b": {"idExtractionPath": [0]}}}'}, "MM_DATAPLANE_CONFIG"),
    ({"MM_TYPE_CONSTRAINTS_PATH": "FILE"}, "MM_TYPE_CONSTRAINTS_PATH"),
])
def test_bad_tc_config_exits_2_naming_the_variable(env, variable, tmp_path):
    if env.get("MM_TYPE_CONSTRAINTS_PATH") == "FILE":
        bad = tmp_path / "tc.json"
        bad.write_text('{"t": "not an object"}')
        env = {"MM_TYPE_CONSTRAINTS_PATH": str(bad)}
    result = subprocess.run([sys.executable, "-m", "modelmesh.cli", "runtime"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), "MM_METRICS": "none", **env})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"modelmesh runtime: invalid {variable}: "), result.stderr

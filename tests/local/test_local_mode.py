"""`modelmesh local` end to end: real processes (this binary, MLServer, the adapter), free
ports, temp config and state dirs (local.md)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket

import grpc
import pytest
from harness import tools
from harness.local_mode import LocalMode, http, iris_expected, isvc_yaml, pid_alive
from harness.models import iris_classes, sklearn_iris
from harness.process import wait_until
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two sklearn iris models (different files, same predictions) trained with MLServer's Python."""
    root = tmp_path_factory.mktemp("model-files")
    python = tools.mlserver_venv() / "bin" / "python"
    return {name: sklearn_iris(root / name, python, name) for name in ("iris-a", "iris-b")}


@pytest.fixture(scope="module")
def local(tmp_path_factory, models):
    work = tmp_path_factory.mktemp("local")
    config = work / "config"
    config.mkdir()
    # One relative path (to the config dir), one file:// URI.
    shutil.copytree(models["iris-a"], config / "models" / "iris")
    (config / "iris.yaml").write_text(isvc_yaml("iris", "models/iris"))
    (config / "iris-abs.yaml").write_text(isvc_yaml("iris-abs", f"file://{models['iris-b']}"))
    mode = LocalMode(work, config, work / "state").start()
    yield mode
    mode.stop()


def test_serves_v2_over_rest_and_grpc(local):
    for name in ("iris", "iris-abs"):
        local.wait_model(name)
        status, body = local.infer_rest(name)
        assert status == 200, body
        assert body["outputs"][0]["data"] == iris_expected()
        assert iris_classes(local.infer_grpc(name)) == iris_expected()
    # The model name field alone routes too (no mm-vmodel-id header).
    assert iris_classes(local.infer_grpc("iris", by_header=False)) == iris_expected()


def test_health_and_metadata_endpoints(local):
    assert http("GET", f"{local.rest}/v2/health/ready") == (200, {"ready": True})
    assert http("GET", f"{local.rest}/v2/health/live") == (200, {"live": True})
    status, meta = http("GET", f"{local.rest}/v2")
    assert status == 200 and meta["name"]
    local.wait_model("iris")
    assert http("GET", f"{local.rest}/v2/models/iris/ready") == (200, {"name": "iris", "ready": True})
    status, _ = http("GET", f"{local.rest}/v2/models/no-such-model/ready")
    assert status == 404


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local_addr, state = line.split()[1], line.split()[3]
                addr, port_hex = local_addr.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    # An IPv4-mapped IPv6 socket (gRPC's) counts as its IPv4 address.
                    found.add(addr[-8:] if addr.startswith("0000000000000000FFFF0000") else addr)
    return found


def _listening_ports_of(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (its socket inodes, looked up in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_every_port_listens_on_host_only(local):
    """--host defaults to 127.0.0.1 (local.md): the mesh's gRPC front door too, not all addresses;
    and the mesh child's own ports (internal gRPC, probes, metrics, preStop) as well."""
    for port in (local.grpc_port, local.rest_port, local.metrics_port):
        assert _listening_addresses(port) == {"0100007F"}, port  # 127.0.0.1, little-endian hex
    mesh_ports = _listening_ports_of(local.status()["runtimes"][0]["pids"][-1])
    assert local.grpc_port in mesh_ports and len(mesh_ports) >= 5, mesh_ports
    for port in mesh_ports:
        assert _listening_addresses(port) == {"0100007F"}, port


def test_metrics_endpoint_has_mode_and_mesh_metrics(local):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{local.metrics_port}/metrics", timeout=10) as resp:
        families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    assert any(s.labels.get("mode") == "local" for s in families["modelmesh_build_info"].samples)
    mesh_samples = [s for f in families.values() for s in f.samples if s.labels.get("mm_instance")]
    assert {s.labels["mm_instance"] for s in mesh_samples} == {"mlserver-1.x-0"}


def test_config_dir_add_change_path_remove(local, models):
    path = local.config_dir / "added.yaml"
    path.write_text(isvc_yaml("added", str(models["iris-a"])))
    first = local.wait_model("added")
    assert local.infer_rest("added")[1]["outputs"][0]["data"] == iris_expected()
    old_id = local.infer_grpc("added").model_name

    # Change the path: the vmodel transitions to a new concrete model, served throughout.
    path.write_text(isvc_yaml("added", f"file://{models['iris-b']}"))
    wait_until(lambda: local.infer_grpc("added").model_name != old_id, 120, "transition to the new path")
    after = local.wait_model("added")
    assert after["transitionStatus"] == "UpToDate" and after["available"]
    assert iris_classes(local.infer_grpc("added")) == iris_expected()
    assert first["file"] == after["file"] == str(path)

    path.unlink()
    wait_until(lambda: local.model_status("added") is None, 60, "model removed from status")
    with pytest.raises(grpc.RpcError) as err:
        local.infer_grpc("added")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert local.infer_rest("iris")[0] == 200  # the others are untouched


def test_invalid_documents_are_per_file_errors(local):
    (local.config_dir / "broken.yaml").write_text("kind: [unclosed\n")
    (local.config_dir / "nostorage.yaml").write_text(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: nostorage}\n"
        "spec: {predictor: {model: {modelFormat: {name: sklearn}}}}\n")
    try:
        wait_until(lambda: str(local.config_dir / "broken.yaml") in local.status()["file_errors"], 30,
                   "file error in status")
        assert "invalid YAML" in local.status()["file_errors"][str(local.config_dir / "broken.yaml")][0]
        wait_until(lambda: local.model_status("nostorage") is not None, 30, "invalid model in status")
        bad = local.model_status("nostorage")
        assert bad["activeModelState"] == "FailedToLoad" and bad["transitionStatus"] == "InvalidSpec"
        assert bad["lastFailureInfo"]["reason"] == "ModelLoadFailed"
        assert bad["lastFailureInfo"]["message"] == "Predictor Storage field missing"
        assert local.ready() and local.infer_rest("iris")[0] == 200
        out = local.run_cli("local", "status", "--state-dir", str(local.state_dir))
        assert out.returncode == 0, out.stderr
        assert "broken.yaml: invalid YAML" in out.stdout and "Predictor Storage field missing" in out.stdout
    finally:
        (local.config_dir / "broken.yaml").unlink()
        (local.config_dir / "nostorage.yaml").unlink()
    wait_until(lambda: not local.status()["file_errors"] and local.model_status("nostorage") is None, 30,
               "errors cleared")


def test_status_command_shows_models_and_runtimes(local):
    local.wait_model("iris")
    out = local.run_cli("local", "status", "--state-dir", str(local.state_dir))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("modelmesh local: ready")
    iris = next(line.split() for line in lines if line.startswith("iris "))
    assert iris[1:6] == ["InferenceService", "True", "Loaded", "-", "UpToDate"]
    runtime = next(line.split() for line in lines if line.startswith("mlserver-1.x "))
    assert runtime[1:4] == ["mlserver-1.x-0", "running", "ready"]
    as_json = local.run_cli("local", "status", "--state-dir", str(local.state_dir), "--json")
    doc = json.loads(as_json.stdout)
    assert doc["ready"] is True and doc["endpoints"]["grpc"] == f"127.0.0.1:{local.grpc_port}"
    assert next(m for m in doc["models"] if m["name"] == "iris")["activeModelState"] == "Loaded"


def test_killed_model_server_is_restarted_and_serves_again(local):
    local.wait_model("iris")
    before = local.status()["runtimes"][0]
    server_pid = before["pids"][0]
    os.kill(server_pid, signal.SIGKILL)
    wait_until(lambda: local.status()["runtimes"][0]["restarts"] == before["restarts"] + 1
               and local.status()["runtimes"][0]["state"] == "running", 120, "model server restarted")
    assert server_pid not in local.child_pids()
    assert "restarted" in local.output()

    def serves() -> bool:
        return local.infer_rest("iris")[0] == 200

    wait_until(serves, 120, "inference after the restart", interval=0.5)
    assert local.infer_rest("iris")[1]["outputs"][0]["data"] == iris_expected()
    wait_until(local.ready, 60, "ready again")


def test_killed_mesh_is_restarted_reported_and_serves_again(local):
    """The mesh is a supervised child too (local.md): SIGKILL it, and the front door serves again."""
    local.wait_model("iris")
    before = local.status()["runtimes"][0]
    mesh_pid = before["pids"][-1]
    assert len(before["pids"]) == 3 and before["mesh"] == "ready"
    with open(f"/proc/{mesh_pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[-3:-1] == [b"runtime", b"mesh"]
    os.kill(mesh_pid, signal.SIGKILL)

    def restarted() -> bool:
        now = local.status()["runtimes"][0]
        return now["mesh_restarts"] == before["mesh_restarts"] + 1 and now["mesh"] == "ready"

    wait_until(restarted, 120, "mesh restarted")
    assert mesh_pid not in local.child_pids() and not pid_alive(mesh_pid)
    assert "mesh (mlserver-1.x-0) exited (code -9); restarting" in local.output()
    assert "mesh of mlserver-1.x-0 restarted" in local.output()
    wait_until(lambda: local.infer_rest("iris")[0] == 200, 120, "REST inference after the restart", interval=0.5)
    assert iris_classes(local.infer_grpc("iris")) == iris_expected()
    wait_until(local.ready, 60, "ready again")
    # Its metrics come back under the front door's metrics port.
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{local.metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'mm_instance="mlserver-1.x-0"' in text


def test_restart_serves_same_models_and_sigterm_leaves_no_child(tmp_path, models):
    config = tmp_path / "config"
    config.mkdir()
    (config / "kept.yaml").write_text(isvc_yaml("kept", f"file://{models['iris-a']}"))
    mode = LocalMode(tmp_path, config, tmp_path / "state")
    try:
        mode.start()
        mode.wait_model("kept")
        assert mode.infer_rest("kept")[0] == 200
        children = mode.child_pids()  # the model server, the adapter, the mesh
        assert len(children) == 3 and all(pid_alive(p) for p in children)
        assert mode.terminate() == 0
        assert not [p for p in children if pid_alive(p)], "children outlived modelmesh local"
        assert "stopped" in mode.output()

        # Same state dir, an empty config dir: the model is served without being declared again.
        mode.config_dir = tmp_path / "empty"
        mode.config_dir.mkdir()
        mode.args[mode.args.index("--config-dir") + 1] = str(mode.config_dir)
        mode.start()
        status, body = mode.infer_rest("kept")
        assert status == 200, body
        assert body["outputs"][0]["data"] == iris_expected()
        kept = mode.wait_model("kept")
        assert kept["declared"] is False and kept["available"]
        children = mode.child_pids()
        assert mode.terminate(sig=signal.SIGINT) == 0  # Ctrl-C
        assert not [p for p in children if pid_alive(p)]
    finally:
        mode.stop()


def test_removed_while_down_is_removed_on_restart(tmp_path, models):
    config = tmp_path / "config"
    config.mkdir()
    (config / "gone.yaml").write_text(isvc_yaml("gone", f"file://{models['iris-a']}"))
    (config / "stays.yaml").write_text(isvc_yaml("stays", f"file://{models['iris-b']}"))
    mode = LocalMode(tmp_path, config, tmp_path / "state")
    try:
        mode.start()
        mode.wait_model("gone")
        assert mode.terminate() == 0
        (config / "gone.yaml").unlink()
        mode.start()
        mode.wait_model("stays")
        assert mode.model_status("gone") is None
        assert mode.infer_rest("gone")[0] == 404
        # Killed outright (no chance to stop them), its children still do not outlive it.
        children = mode.child_pids()
        mode.proc.proc.send_signal(signal.SIGKILL)
        mode.proc.proc.wait(10)
        wait_until(lambda: not [p for p in children if pid_alive(p)], 30, "children killed with their parent")
    finally:
        mode.stop()


def test_port_in_use_is_one_line_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mode = LocalMode(tmp_path, tmp_path / "config", tmp_path / "state")
        result = mode.run_cli(*[a if a != str(mode.rest_port) else str(port) for a in mode.args])
    assert result.returncode == 2
    assert result.stderr.strip() == f"modelmesh local: port {port} (--rest-port) on 127.0.0.1 is in use; " \
                                    "pick another with --rest-port"


def test_runtime_that_cannot_start_is_one_line_exit_1(tmp_path):
    mode = LocalMode(tmp_path, tmp_path / "config", tmp_path / "state",
                     env={"MODELMESH_CACHE": str(tmp_path / "no-cache")})
    result = mode.run_cli(*mode.args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelmesh local: runtime mlserver-1.x cannot start: MLServer")


async def test_two_instances_on_etcd_share_one_front_door(tmp_path, models, etcd):
    from modelmesh.kv import open_store

    config = tmp_path / "config"
    config.mkdir()
    for name, model in models.items():
        (config / f"{name}.yaml").write_text(isvc_yaml(name, f"file://{model}"))
    mode = LocalMode(tmp_path, config, tmp_path / "state",
                     extra_args=["--instances", "2", "--kv-store", f"etcd:{etcd.endpoint}"])
    try:
        await asyncio.to_thread(mode.start)
        runtimes = mode.status()["runtimes"]
        assert [r["instance"] for r in runtimes] == ["mlserver-1.x-0", "mlserver-1.x-1"]
        for name in models:
            await asyncio.to_thread(mode.wait_model, name)
            status, body = await asyncio.to_thread(mode.infer_rest, name)
            assert status == 200 and body["outputs"][0]["data"] == iris_expected()
        # The coordination state is in etcd: both instances and both vmodels.
        store = await open_store(f"etcd:{etcd.endpoint}", None)
        try:
            kvs, _ = await store.get_prefix("")
        finally:
            await store.close()
        keys = [kv.key for kv in kvs]
        assert sum("/instances/mlserver-1.x-" in k for k in keys) == 2, keys
        assert sum(k.endswith(("/vmodels/iris-a", "/vmodels/iris-b")) for k in keys) == 2, keys
        assert not (tmp_path / "state" / "kv").exists()
    finally:
        await asyncio.to_thread(mode.stop)


@pytest.mark.slow
def test_mlserver_and_triton_behind_one_front_door(tmp_path, models):
    from harness.models import triton_python_doubler

    config = tmp_path / "config"
    config.mkdir()
    triton_python_doubler(config / "models", "doubler")
    (config / "doubler.yaml").write_text(isvc_yaml("doubler", "models/doubler", "python"))
    (config / "iris.yaml").write_text(isvc_yaml("iris", f"file://{models['iris-a']}"))
    tools.triton_env()  # fails with the install command when Triton is missing
    mode = LocalMode(tmp_path, config, tmp_path / "state")
    mode.args[mode.args.index("--runtimes") + 1] = "mlserver,triton"
    try:
        mode.start()
        assert [r["instance"] for r in mode.status()["runtimes"]] == ["mlserver-1.x-0", "triton-2.x-0"]
        status, body = http("POST", f"{mode.rest}/v2/models/doubler/infer",
                            {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]})
        assert status == 200, body
        assert body["outputs"][0]["data"] == [2.0, 4.0, 6.0]
        assert mode.infer_rest("iris")[1]["outputs"][0]["data"] == iris_expected()
    finally:
        mode.stop()


async def test_remote_storage_predictor_and_load_failure(tmp_path, s3_server, s3_models):
    from harness.s3_models import BUCKET, STORAGE_KEY, write_storage_config

    config = tmp_path / "config"
    write_storage_config(config / "storage-config", s3_server)  # the default storage config dir
    (config / "s3.yaml").write_text(f"""\
apiVersion: serving.kserve.io/v1alpha1
kind: Predictor
metadata: {{name: s3-iris}}
spec:
  modelType: {{name: sklearn}}
  storage: {{key: {STORAGE_KEY}, path: {s3_models['iris']}}}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: s3-uri-iris
  annotations: {{serving.kserve.io/deploymentMode: ModelMesh, serving.kserve.io/secretKey: {STORAGE_KEY}}}
spec:
  predictor:
    sklearn: {{storageUri: "s3://{BUCKET}/{s3_models['iris']}"}}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: corrupt}}
spec:
  predictor:
    model:
      modelFormat: {{name: sklearn}}
      storage: {{key: {STORAGE_KEY}, path: {s3_models['corrupt']}}}
""")
    mode = LocalMode(tmp_path, config, tmp_path / "state")
    try:
        await asyncio.to_thread(mode.start)
        for name, kind in (("s3-iris", "Predictor"), ("s3-uri-iris", "InferenceService")):
            row = await asyncio.to_thread(mode.wait_model, name)
            assert row["kind"] == kind
            status, body = await asyncio.to_thread(mode.infer_rest, name)
            assert status == 200 and body["outputs"][0]["data"] == iris_expected(), body
        failed = await asyncio.to_thread(mode.wait_model, "corrupt", "FailedToLoad")
        assert failed["lastFailureInfo"]["reason"] == "ModelLoadFailed" and not failed["available"]
        assert failed["lastFailureInfo"]["message"]
        assert mode.ready()  # a model that fails to load does not make the front door unready
    finally:
        await asyncio.to_thread(mode.stop)


def test_custom_runtimes_started_by_command(tmp_path, models):
    """Two ServingRuntimes with a command: MLServer driven by the built-in adapter, and a
    runtime implementing the SPI itself (the test runtime) with the puller in front."""
    import sys

    from harness.local_mode import ROOT
    from harness.mesh_client import infer_request
    from harness.process import free_port

    from modelmesh.protos.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    config = tmp_path / "config"
    (config / "models" / "echo").mkdir(parents=True)
    (config / "models" / "echo" / "weights.bin").write_bytes(b"\x00" * 64)
    mls_grpc, mls_http, mls_metrics, spi = free_port(), free_port(), free_port(), free_port()
    (config / "runtimes.yaml").write_text(f"""\
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {{name: my-mlserver}}
spec:
  supportedModelFormats: [{{name: sklearn, version: "0", autoSelect: true}}]
  multiModel: true
  grpcDataEndpoint: "port:{mls_grpc}"
  containers:
    - name: mlserver
      command: ["{tools.mlserver_venv() / 'bin' / 'mlserver'}", start, "$(MODELMESH_MODELS_DIR)"]
      env:
        - {{name: MLSERVER_GRPC_PORT, value: "{mls_grpc}"}}
        - {{name: MLSERVER_HTTP_PORT, value: "{mls_http}"}}
        - {{name: MLSERVER_METRICS_PORT, value: "{mls_metrics}"}}
        - {{name: MLSERVER_HOST, value: 127.0.0.1}}
        - {{name: MLSERVER_LOAD_MODELS_AT_STARTUP, value: "false"}}
        - {{name: MLSERVER_PARALLEL_WORKERS, value: "0"}}
  builtInAdapter: {{serverType: mlserver, runtimeManagementPort: {mls_grpc}}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata: {{name: echo-runtime}}
spec:
  supportedModelFormats: [{{name: echo, autoSelect: true}}]
  multiModel: true
  grpcEndpoint: "port:{spi}"
  grpcDataEndpoint: "port:{spi}"
  containers:
    - name: echo
      command: ["{sys.executable}", -m, harness.test_runtime]
      env:
        - {{name: TEST_RUNTIME_PORT, value: "{spi}"}}
        - {{name: TEST_RUNTIME_NAME, value: echo-runtime}}
        - {{name: PYTHONPATH, value: "{ROOT / 'tests'}:{ROOT}"}}
---
kind: ServingRuntime
metadata: {{name: no-command}}
spec: {{containers: [{{name: x, image: "some/image:1"}}], grpcDataEndpoint: "port:1"}}
""")
    (config / "iris.yaml").write_text(isvc_yaml("iris", f"file://{models['iris-a']}"))
    (config / "echo.yaml").write_text(isvc_yaml("echo", "models/echo", "echo"))
    mode = LocalMode(tmp_path, config, tmp_path / "state")
    mode.args[mode.args.index("--runtimes") + 1] = "none"
    try:
        mode.start()
        assert [r["instance"] for r in mode.status()["runtimes"]] == ["my-mlserver-0", "echo-runtime-0"]
        errors = mode.status()["file_errors"][str(config / "runtimes.yaml")]
        assert errors == [("ServingRuntime no-command: spec.containers[0].command is required in local mode "
                          "(an image cannot run here)")]
        mode.wait_model("iris")
        assert mode.infer_rest("iris")[1]["outputs"][0]["data"] == iris_expected()
        mode.wait_model("echo")
        with grpc.insecure_channel(f"127.0.0.1:{mode.grpc_port}") as ch:
            request = infer_request()
            request.model_name = "echo"  # in this mode the name field routes (and wins over the header)
            resp = GRPCInferenceServiceStub(ch).ModelInfer(request, metadata=[("mm-vmodel-id", "echo")], timeout=60)
        assert resp.parameters["runtime"].string_param == "echo-runtime"
        # The puller linked the model in for the runtime.
        pulled = list((tmp_path / "state" / "instances" / "echo-runtime-0" / "models").glob("echo__isvc-*/echo"))
        assert len(pulled) == 1 and (pulled[0] / "weights.bin").exists()
    finally:
        mode.stop()


def test_auto_goes_on_without_a_triton_that_cannot_start(tmp_path, models):
    cache = tmp_path / "cache"
    (cache / "venvs").mkdir(parents=True)
    (cache / "venvs" / tools.mlserver_venv().name).symlink_to(tools.mlserver_venv())
    (cache / "triton-2.51").mkdir()
    # An installed-looking Triton whose server exits at once (fault injection: a stand-in binary).
    (cache / "triton-2.51" / "env").write_text(
        "TRITON_BIN=/bin/false\nTRITON_BACKENDS=/nonexistent\nTRITON_PATH=/usr/bin\nTRITON_LD_LIBRARY_PATH=\n")
    config = tmp_path / "config"
    config.mkdir()
    (config / "iris.yaml").write_text(isvc_yaml("iris", f"file://{models['iris-a']}"))
    mode = LocalMode(tmp_path, config, tmp_path / "state", env={"MODELMESH_CACHE": str(cache)})
    mode.args[mode.args.index("--runtimes") + 1] = "auto"
    try:
        mode.start()
        assert [r["instance"] for r in mode.status()["runtimes"]] == ["mlserver-1.x-0"]
        assert "triton-2.x cannot start" in mode.output() and "going on without it" in mode.output()
        mode.wait_model("iris")
        assert mode.infer_rest("iris")[1]["outputs"][0]["data"] == iris_expected()
    finally:
        mode.stop()

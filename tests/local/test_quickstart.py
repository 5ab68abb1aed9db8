"""`make quickstart`'s own script: installs (from cache), generates the example models, runs
`modelmesh local` in the foreground, and prints commands that work as printed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from harness.local_mode import env_for_child, http, pid_alive
from harness.process import ManagedProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(900)


def test_quickstart_script_serves_its_example_models(tmp_path):
    config, state = tmp_path / "config", tmp_path / "state"
    grpc_port, rest_port, metrics_port = free_port(), free_port(), free_port()
    env = {
        **env_for_child(), "MODELMESH_LOCAL_DIR": str(config), "MODELMESH_STATE_DIR": str(state),
        "MM_SVC_GRPC_PORT": str(grpc_port), "REST_PROXY_LISTEN_PORT": str(rest_port),
        "METRICS_PORT": str(metrics_port), "MODELMESH_RUNTIMES": "mlserver",
    }
    if (ROOT / ".venv").is_symlink():
        # A developer worktree sharing another checkout's venv: installing would repoint it.
        env["MODELMESH_SKIP_INSTALL"] = "1"
    proc = ManagedProcess("quickstart", ["bash", ROOT / "scripts" / "quickstart.sh"], tmp_path / "quickstart.out",
                          env=env, cwd=ROOT)
    rest = f"http://127.0.0.1:{rest_port}"
    try:
        proc.start(lambda: http("GET", f"{rest}/v2/health/ready", timeout=2)[0] == 200, timeout=600)
        out = proc.log_path.read_text()
        assert sorted(p.name for p in config.glob("*.yaml")) == ["lightgbm-iris.yaml", "sklearn-iris.yaml"]
        assert f"REST (KServe V2):                   {rest}" in out
        assert f"127.0.0.1:{grpc_port}" in out

        # Every printed command works as printed.
        commands = [line.strip() for line in out.splitlines() if line.startswith("    ")]
        assert len(commands) == 3, out
        ready, infer, grpc_call = (subprocess.run(c, shell=True, capture_output=True, text=True, timeout=120, check=False)
                                   for c in commands)
        assert json.loads(ready.stdout) == {"name": "sklearn-iris", "ready": True}, ready
        answer = json.loads(infer.stdout)
        assert answer["outputs"][0]["data"] == [1], answer  # versicolor
        assert grpc_call.returncode == 0, grpc_call.stderr
        assert "outputs" in grpc_call.stdout

        # The second example: a LightGBM model, same features, class probabilities.
        wait_until(lambda: http("GET", f"{rest}/v2/models/lightgbm-iris/ready")[0] == 200, 120, "lightgbm ready")
        status, body = http("POST", f"{rest}/v2/models/lightgbm-iris/infer", {"inputs": [
            {"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4]]}]})
        assert status == 200, body
        probs = body["outputs"][0]["data"]
        assert len(probs) == 3 and probs.index(max(probs)) == 1

        status_cmd = subprocess.run(shlex.split(f"{ROOT / '.venv/bin/python'} -m modelmesh.cli local status"),
                                    capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False)
        assert "sklearn-iris" in status_cmd.stdout and "lightgbm-iris" in status_cmd.stdout, status_cmd

        children = json.loads((state / "status.json").read_text())["runtimes"][0]["pids"]
        proc.proc.terminate()  # the script exec'd modelmesh local: this is Ctrl-C's SIGTERM twin
        assert proc.proc.wait(60) == 0
        assert not [p for p in children if pid_alive(p)]
    finally:
        proc.stop(grace=60)
    assert os.path.exists(config / "models" / "sklearn-iris" / "model.joblib")

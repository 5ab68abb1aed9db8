"""The `modelmesh` binary: modes, --help listing settings, one-line setting errors, and the
shared lifecycle (probes, metrics, JSON logs, graceful SIGTERM/SIGINT, clear port errors)."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.process import ManagedProcess, free_port, wait_until

MODELMESH = [sys.executable, "-m", "modelmesh.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MODELMESH, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version():
    result = run_cli("version")
    assert result.returncode == 0 and result.stdout.startswith("modelmesh ")


@pytest.mark.parametrize("args, expected", [
    (["runtime"], ["MM_SERVICE_NAME", "MM_SVC_GRPC_PORT", "KV_STORE", "MM_KVSTORE_PREFIX", "INTERNAL_GRPC_PORT",
                   "WKUBE_POD_IPADDR", "MM_TYPE_CONSTRAINTS_PATH", "MM_DATAPLANE_CONFIG_PATH", "SHUTDOWN_TIMEOUT_MS",
                   "adapter", "rest-proxy", "puller"]),
    (["runtime", "adapter"], ["ADAPTER_PORT", "RUNTIME_PORT", "CONTAINER_MEM_REQ_BYTES", "MEM_BUFFER_BYTES",
                              "LOADTIME_TIMEOUT", "MODELSIZE_MULTIPLIER", "ROOT_MODEL_DIR"]),
    (["runtime", "rest-proxy"], ["REST_PROXY_LISTEN_PORT", "REST_PROXY_GRPC_PORT", "REST_PROXY_USE_TLS",
                                 "REST_PROXY_GRPC_MAX_MSG_SIZE_BYTES", "REST_PROXY_SKIP_VERIFY"]),
    (["controller"], ["KUBECONFIG", "NAMESPACE", "NAMESPACE_SCOPE", "ETCD_SECRET_NAME", "ENABLE_ISVC_WATCH",
                      "DEV_MODE_LOGGING"]),
    (["local"], ["MODELMESH_LOCAL_DIR", "REST_PROXY_LISTEN_PORT"]),
])
def test_help_lists_settings(args, expected):
    result = run_cli(*args, "--help")
    assert result.returncode == 0, result.stderr
    missing = [e for e in expected if e not in result.stdout]
    assert not missing, f"--help of {args} lacks {missing}"


@pytest.mark.parametrize("args, env, message", [
    (["runtime"], {"MM_SVC_GRPC_PORT": "eighty"}, "modelmesh runtime: invalid MM_SVC_GRPC_PORT='eighty': expected an integer"),
    (["runtime", "--probe-port", "99999"], {}, "modelmesh runtime: invalid --probe-port='99999': expected a port number 0-65535"),
    (["runtime", "adapter"], {}, "modelmesh runtime: CONTAINER_MEM_REQ_BYTES is required"),
    (["controller"], {"NAMESPACE_SCOPE": "perhaps"}, "modelmesh controller: invalid NAMESPACE_SCOPE='perhaps': expected true or false"),
])
def test_invalid_settings_exit_2_with_one_line(args, env, message):
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def _get(url: str, context=None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _start_runtime(tmp_path: Path, env: dict[str, str]) -> ManagedProcess:
    proc = ManagedProcess("modelmesh-runtime", [*MODELMESH, "runtime"], tmp_path / "runtime.log",
                          env={**os.environ, "MM_PRESTOP_WAIT_PORT": str(free_port()), **env})
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_runtime_serves_probes_metrics_and_stops_gracefully(tmp_path, sig):
    probe, metrics = free_port(), free_port()
    proc = _start_runtime(tmp_path, {"MM_PROBE_PORT": str(probe), "MM_METRICS": f"prometheus:port={metrics};scheme=http",
                                     "WKUBE_POD_NAME": "test-pod"})
    proc.start(lambda: _get(f"http://127.0.0.1:{probe}/live")[0] == 200, timeout=30)
    try:
        # Not ready: there is no model runtime for the mesh to talk to, so start-up is waiting.
        assert _get(f"http://127.0.0.1:{probe}/ready")[0] == 503
        status, body = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body)}
        info = families["modelmesh_build_info"].samples[0]
        assert info.labels["mode"] == "runtime" and info.value == 1
    finally:
        os.kill(proc.pid, sig)
        wait_until(lambda: not proc.alive(), 45, "runtime exit after signal")
    assert proc.proc.returncode == 0
    events = [orjson.loads(line) for line in proc.log_path.read_bytes().splitlines() if line.startswith(b"{")]
    names = [e["event"] for e in events]
    # A signal ends even a start-up that is still waiting for the runtime, cleanly.
    assert "shutdown requested" in names and names[-1] == "stopped during start-up"
    assert all("timestamp" in e and "level" in e for e in events)


def test_metrics_over_https_with_generated_certificate(tmp_path):
    probe, metrics = free_port(), free_port()
    proc = _start_runtime(tmp_path, {"MM_PROBE_PORT": str(probe), "MM_METRICS": f"prometheus:port={metrics};scheme=https"})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    proc.start(lambda: _get(f"https://127.0.0.1:{metrics}/metrics", ctx)[0] == 200, timeout=30)
    try:
        with pytest.raises(OSError):  # plain http is not served on an https port
            urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=2).read()
    finally:
        assert proc.stop() == 0


def test_port_in_use_is_a_clear_startup_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*MODELMESH, "runtime"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "MM_PROBE_PORT": str(port), "MM_METRICS": "none",
                                     "MM_PRESTOP_WAIT_PORT": str(free_port())})
    assert result.returncode == 1
    errors = [orjson.loads(line) for line in result.stdout.splitlines() if '"error"' in line]
    assert any(e["event"] == "start-up failed" and f":{port}" in e["error"] for e in errors), result.stdout


def test_console_log_format_is_for_people(tmp_path):
    probe = free_port()
    proc = _start_runtime(tmp_path, {"MM_PROBE_PORT": str(probe), "MM_METRICS": "none", "LOG_FORMAT": "console"})
    proc.start(lambda: _get(f"http://127.0.0.1:{probe}/live")[0] == 200, timeout=30)
    assert proc.stop() == 0
    text = proc.log_path.read_text()
    assert "shutdown requested" in text and not any(line.startswith("{") for line in text.splitlines())

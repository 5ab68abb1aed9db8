"""`modelmesh runtime rest-proxy` as a process: configured by env, answers V2 REST in front of
a real Triton, serves its own /metrics, writes access-log lines, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

import orjson
from prometheus_client.parser import text_string_to_metric_families

from harness.process import ManagedProcess, free_port, port_open


def _post(url: str, doc: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=orjson.dumps(doc), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def test_cli_role_serves_requests_metrics_and_access_log(proxy_triton, tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "REST_PROXY_LISTEN_HOST": "127.0.0.1", "REST_PROXY_LISTEN_PORT": str(port),
           "REST_PROXY_GRPC_PORT": str(proxy_triton.grpc_port), "REST_PROXY_METRICS_PORT": str(metrics_port),
           "REST_PROXY_ACCESS_LOG": "true", "LOG_FORMAT": "json"}
    proc = ManagedProcess("rest-proxy", [sys.executable, "-m", "modelmesh.cli", "runtime", "rest-proxy"],
                          tmp_path / "proxy.log", env=env)
    proc.start(lambda: port_open(port) and port_open(metrics_port), timeout=30)
    try:
        url = f"http://127.0.0.1:{port}/v2/models/doubler/infer"
        status, reply = _post(url, {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2], "data": [1, -4]}]})
        assert status == 200, reply
        assert reply["outputs"][0]["data"] == [2.0, -8.0]
        status, reply = _post(url, {"inputs": "nope"})
        assert status == 400 and "inputs" in reply["error"]

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        counts = {(s.labels["route"], s.labels["code"]): s.value
                  for s in families["modelmesh_rest_proxy_requests"].samples if s.name.endswith("_total")}
        assert counts[("/v2/models/{name}/infer", "200")] == 1
        assert counts[("/v2/models/{name}/infer", "400")] == 1
        assert "modelmesh_rest_proxy_request_duration_seconds" in families
    finally:
        code = proc.stop()
    assert code == 0, proc.log_tail()
    lines = [orjson.loads(line) for line in (tmp_path / "proxy.log").read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [
        ("POST", "/v2/models/doubler/infer", 200), ("POST", "/v2/models/doubler/infer", 400)]
    assert all(a["duration_ms"] >= 0 and a["bytes_in"] > 0 and a["bytes_out"] > 0 for a in access)

"""Typed settings: env names, precedence, parsing and one-line errors."""

from dataclasses import dataclass

import pytest

from modelmesh.config.adapter import AdapterSettings
from modelmesh.config.common import MetricsSpec
from modelmesh.config.controller import ControllerSettings
from modelmesh.config.mesh import MeshSettings
from modelmesh.config.proxy import RestProxySettings
from modelmesh.config.settings import SettingsError, describe, load_settings, parse_bool, port, setting


@dataclass(frozen=True)
class Demo:
    name: str = setting("DEMO_NAME", "x", "a name")
    count: int = setting("DEMO_COUNT", 3, "a count", check=port)
    on: bool = setting("DEMO_ON", False, "a flag", parse=parse_bool)
    must: str = setting("DEMO_MUST", help="required thing")


def test_precedence_flag_over_env_over_default():
    s = load_settings(Demo, {"DEMO_MUST": "m", "DEMO_NAME": "env"}, {"name": "flag"})
    assert (s.name, s.count, s.on, s.must) == ("flag", 3, False, "m")
    s = load_settings(Demo, {"DEMO_MUST": "m", "DEMO_NAME": "env", "DEMO_ON": "TRUE"})
    assert (s.name, s.on) == ("env", True)


@pytest.mark.parametrize("env, message", [
    ({}, "DEMO_MUST is required (required thing)"),
    ({"DEMO_MUST": "m", "DEMO_COUNT": "many"}, "invalid DEMO_COUNT='many': expected an integer"),
    ({"DEMO_MUST": "m", "DEMO_COUNT": "70000"}, "invalid DEMO_COUNT='70000': expected a port number 0-65535"),
    ({"DEMO_MUST": "m", "DEMO_ON": "maybe"}, "invalid DEMO_ON='maybe': expected true or false"),
])
def test_errors_are_one_line_naming_the_variable(env, message):
    with pytest.raises(SettingsError) as e:
        load_settings(Demo, env)
    assert str(e.value) == message


def test_flag_errors_name_the_flag():
    with pytest.raises(SettingsError, match=r"^invalid --count='x': expected an integer$"):
        load_settings(Demo, {"DEMO_MUST": "m"}, {"count": "x"})


def test_mesh_defaults_follow_the_launch_contract():
    s = load_settings(MeshSettings, {})
    assert (s.grpc_port, s.internal_grpc_port, s.probe_port, s.runtime_grpc_port) == (8033, 8080, 8089, 8085)
    assert s.metrics == MetricsSpec(True, 2112, "https")
    assert s.kv_prefix == "tas-runtime" and s.min_churn_age_ms == 30000 and s.load_failure_expiry_ms == 900000
    s = load_settings(MeshSettings, {"MM_LABELS": "mt:sklearn, rt:mlserver,,", "WKUBE_POD_NAME": "pod-1",
                                     "MM_METRICS": "prometheus:port=9999;scheme=http"})
    assert s.labels == ("mt:sklearn", "rt:mlserver") and s.instance_id == "pod-1"
    assert s.metrics == MetricsSpec(True, 9999, "http")
    with pytest.raises(SettingsError, match="MM_KVSTORE_PREFIX"):
        load_settings(MeshSettings, {"MM_KVSTORE_PREFIX": "a/b"})


@pytest.mark.parametrize("raw, problem", [
    ("statsd:port=1", "expected prometheus"), ("prometheus:port=abc", "bad port"),
    ("prometheus:scheme=ftp", "scheme must be"), ("prometheus:colour=red", "unknown option"),
])
def test_metrics_spec_rejects_bad_values(raw, problem):
    with pytest.raises(SettingsError, match=problem):
        load_settings(MeshSettings, {"MM_METRICS": raw})


def test_metrics_spec_can_be_disabled():
    assert load_settings(MeshSettings, {"MM_METRICS": ""}).metrics.enabled is False


def test_adapter_and_proxy_defaults():
    a = load_settings(AdapterSettings, {"CONTAINER_MEM_REQ_BYTES": "1073741824"})
    assert (a.adapter_port, a.runtime_port, a.mem_buffer_bytes, a.loading_concurrency) == (8085, 8001, 256 << 20, 1)
    assert (a.loadtime_timeout_ms, a.default_model_size, a.size_multiplier) == (30000, 1000000, 1.25)
    with pytest.raises(SettingsError, match="SERVER_TYPE"):
        load_settings(AdapterSettings, {"CONTAINER_MEM_REQ_BYTES": "1", "SERVER_TYPE": "tfserving"})
    p = load_settings(RestProxySettings, {})
    assert (p.listen_port, p.grpc_port, p.use_tls, p.grpc_max_msg_size) == (8008, 8033, False, 16777216)


def test_controller_defaults_and_tristate_watches():
    c = load_settings(ControllerSettings, {"NAMESPACE": "ns"})
    assert (c.namespace, c.etcd_secret_name, c.controller_deployment) == ("ns", "model-serving-etcd",
                                                                         "modelmesh-controller")
    assert c.enable_isvc_watch is None and c.namespace_scope is False
    assert load_settings(ControllerSettings, {"ENABLE_ISVC_WATCH": "false"}).enable_isvc_watch is False


def test_describe_lists_every_env_var_once():
    envs = [row[1] for row in describe(MeshSettings)]
    assert len(envs) == len(set(envs))
    assert {"MM_SERVICE_NAME", "MM_SVC_GRPC_PORT", "KV_STORE", "INTERNAL_GRPC_PORT", "MM_TLS_CLIENT_AUTH"} <= set(envs)


def test_model_size_multiplier_defaults_per_server_type():
    base = {"CONTAINER_MEM_REQ_BYTES": "1"}
    assert load_settings(AdapterSettings, base).size_multiplier == 1.25
    assert load_settings(AdapterSettings, {**base, "SERVER_TYPE": "torchserve"}).size_multiplier == 2.75
    explicit = {**base, "SERVER_TYPE": "torchserve", "MODELSIZE_MULTIPLIER": "1.5"}
    assert load_settings(AdapterSettings, explicit).size_multiplier == 1.5

"""model-serving-config parsing: defaults, case-insensitive keys, clear errors."""

import pytest

from modelmesh.controller.user_config import ConfigError, ControllerConfig


def test_defaults_match_the_reference():
    c = ControllerConfig.defaults()
    assert (c.pods_per_runtime, c.headless_service) == (2, True)
    assert (c.service_name, c.service_port) == ("modelmesh-serving", 8033)
    assert (c.storage_secret_name, c.grpc_max_message_size, c.allow_any_pvc) == ("storage-config", 16777216, False)
    assert (c.metrics_enabled, c.metrics_port, c.metrics_scheme) == (True, 2112, "https")
    assert (c.scale_to_zero, c.scale_to_zero_grace_s) == (True, 60)
    assert (c.rest_proxy_enabled, c.rest_proxy_port) == (True, 8008)
    assert c.rest_proxy_resources == {"requests": {"cpu": "50m", "memory": "96Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}
    assert c.modelmesh_resources == {"requests": {"cpu": "300m", "memory": "448Mi"},
                                     "limits": {"cpu": "3", "memory": "448Mi"}}
    assert c.builtin_server_types == ("triton", "mlserver", "ovms", "torchserve")


def test_keys_are_case_insensitive_and_merge_with_defaults():
    c = ControllerConfig.from_yaml("podsperruntime: 1\nScaleToZero:\n  GRACEPERIODSECONDS: 5\n"
                                   "restproxy: {ENABLED: false}\nmodelMeshEndpoint: 127.0.0.1:1\n")
    assert (c.pods_per_runtime, c.scale_to_zero_grace_s, c.scale_to_zero) == (1, 5, True)
    assert not c.rest_proxy_enabled and c.rest_proxy_port == 8008
    assert c.modelmesh_endpoint == "127.0.0.1:1"


@pytest.mark.parametrize("text,needle", [
    ("podsPerRuntime: many", "podsPerRuntime: expected an integer"),
    ("metrics: {port: 70000}", "metrics.port"),
    ("metrics: {scheme: ftp}", "metrics.scheme"),
    ("payloadProcessors: ['a b']", "payloadProcessors"),
    ("tls: {clientAuth: maybe}", "tls.clientAuth"),
    ("restProxy: 3", "restProxy: expected a map"),
    ("[1, 2]", "must be a map"),
    ("a: [", "not valid YAML"),
])
def test_invalid_values_are_named(text, needle):
    with pytest.raises(ConfigError) as e:
        ControllerConfig.from_yaml(text)
    assert needle in str(e.value)

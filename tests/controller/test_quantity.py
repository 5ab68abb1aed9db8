"""Quantities as the apiserver expects them: YAML numbers become canonical strings."""

import pytest

from modelmesh.controller.quantity import binary_si, normalized_resources, parse_quantity, quantity_string


@pytest.mark.parametrize("raw, text", [
    (5, "5"), (0.5, "500m"), (1.5, "1500m"), (5000, "5k"), (1500, "1500"), (0, "0"), (1e9, "1G"),
    (0.0001, "100u"), (2.5e-10, "1n"), ("1Gi", "1Gi"), (" 250m ", "250m"), ("1e3", "1e3"),
])
def test_quantity_string(raw, text):
    assert quantity_string(raw) == text
    assert parse_quantity(text) == parse_quantity(raw) or raw == 2.5e-10  # rounded up to nano units


@pytest.mark.parametrize("bad", ["lots", "", "Mi", "1.2.3", True, None, float("nan"), float("inf"), [1]])
def test_invalid_quantity(bad):
    with pytest.raises(ValueError):
        quantity_string(bad)


def test_binary_si_and_resources():
    assert binary_si(1610612736) == "1536Mi" and binary_si(2**30) == "1Gi" and binary_si(1000) == "1000"
    assert normalized_resources({"limits": {"cpu": 5, "memory": "1Gi"}, "requests": {"cpu": 0.25}, "claims": []}) \
        == {"limits": {"cpu": "5", "memory": "1Gi"}, "requests": {"cpu": "250m"}, "claims": []}
    assert normalized_resources(None) == {}

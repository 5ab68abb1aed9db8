"""Storage-config resolution, table-driven: storage_key, default_<type>, default,
default_bucket, legacy bucket, dotted storage_params overrides, and the errors."""

from __future__ import annotations

import json

import pytest

from modelmesh.storage.errors import PullInputError
from modelmesh.storage.model_key import parse_model_key
from modelmesh.storage.storage_config import StorageConfigDir, resolve_storage_config

CONFIGS = {
    "mys3": {"type": "s3", "bucket": "b1", "endpoint_url": "http://e", "default_bucket": "dflt"},
    "nobucket": {"type": "s3", "default_bucket": "dflt"},
    "default": {"type": "s3", "bucket": "from-default"},
    "default_gcs": {"type": "gcs", "bucket": "gb"},
    "web": {"type": "http", "url": "https://h", "headers": {"A": "1"}},
    "typeless": {"bucket": "x"},
}

CASES = [
    ("explicit key", {"storage_key": "mys3"}, {"type": "s3", "bucket": "b1"}),
    ("default_bucket fills a missing bucket", {"storage_key": "nobucket"}, {"bucket": "dflt"}),
    ("legacy bucket beats default_bucket", {"storage_key": "nobucket", "bucket": "legacy"}, {"bucket": "legacy"}),
    ("params override the file", {"storage_key": "mys3", "storage_params": {"bucket": "p"}}, {"bucket": "p"}),
    ("no key: default", {}, {"type": "s3", "bucket": "from-default"}),
    ("no key: default_<type>", {"storage_params": {"type": "gcs"}}, {"type": "gcs", "bucket": "gb"}),
    ("no key: unknown type falls back to default + override",
     {"storage_params": {"type": "azure", "container": "c"}},
     {"type": "azure", "bucket": "from-default", "container": "c"}),
    ("dotted params address nested objects",
     {"storage_key": "web", "storage_params": {"headers.Authorization": "Bearer t"}},
     {"headers": {"A": "1", "Authorization": "Bearer t"}}),
    ("dotted params create missing objects",
     {"storage_key": "mys3", "storage_params": {"a.b.c": "v"}}, {"a": {"b": {"c": "v"}}}),
]

ERRORS = [
    ("missing key file", {"storage_key": "nope"}, "did not find storage config for key 'nope'"),
    ("no type anywhere", {"storage_key": "typeless"}, "Predictor Storage field missing"),
    ("not JSON", "{not json", "modelKey is not valid JSON"),
    ("not an object", "[1]", "modelKey must be a JSON object"),
    ("params not an object", {"storage_params": "x"}, "'storage_params' must be an object"),
]


@pytest.fixture
def configs(tmp_path) -> StorageConfigDir:
    for name, cfg in CONFIGS.items():
        (tmp_path / name).write_text(json.dumps(cfg))
    return StorageConfigDir(str(tmp_path))


@pytest.mark.parametrize("name,key,expected", CASES, ids=[c[0] for c in CASES])
def test_resolves(configs, name, key, expected):
    got = resolve_storage_config(parse_model_key(json.dumps(key)), configs)
    for field, value in expected.items():
        assert got[field] == value, f"{name}: {field}"


@pytest.mark.parametrize("name,key,message", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(configs, name, key, message):
    text = key if isinstance(key, str) else json.dumps(key)
    with pytest.raises(PullInputError, match=message.replace("(", r"\(")):
        resolve_storage_config(parse_model_key(text), configs)


def test_no_configs_and_no_params_is_field_missing(tmp_path):
    with pytest.raises(PullInputError, match="Predictor Storage field missing"):
        resolve_storage_config(parse_model_key(""), StorageConfigDir(str(tmp_path / "absent")))


def test_resolution_does_not_mutate_cached_config(configs):
    key = parse_model_key(json.dumps({"storage_key": "web", "storage_params": {"headers.X": "1"}}))
    resolve_storage_config(key, configs)
    again = resolve_storage_config(parse_model_key(json.dumps({"storage_key": "web"})), configs)
    assert again["headers"] == {"A": "1"}


def test_changes_seen_without_restart_and_parsed_once(tmp_path):
    (tmp_path / "k").write_text(json.dumps({"type": "s3", "bucket": "one"}))
    store = StorageConfigDir(str(tmp_path))
    assert store.get("k")["bucket"] == "one"
    first = store.entries()
    assert store.entries() is first  # unchanged dir: served from memory, not re-parsed
    (tmp_path / "k").write_text(json.dumps({"type": "s3", "bucket": "two-longer"}))
    assert store.get("k")["bucket"] == "two-longer"
    (tmp_path / "new").write_text(json.dumps({"type": "gcs"}))
    assert store.get("new") == {"type": "gcs"}
    (tmp_path / "k").unlink()
    assert store.get("k") is None


def test_kubernetes_secret_symlink_swap_is_seen(tmp_path):
    # A mounted secret: key -> ..data/key, ..data -> ..<timestamp>; updates swap ..data.
    for version, bucket in (("..v1", "one"), ("..v2", "two")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "k").write_text(json.dumps({"type": "s3", "bucket": bucket}))
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "k").symlink_to("..data/k")
    store = StorageConfigDir(str(tmp_path))
    assert store.get("k")["bucket"] == "one"
    (tmp_path / "..data_tmp").symlink_to("..v2")
    (tmp_path / "..data_tmp").rename(tmp_path / "..data")
    assert store.get("k")["bucket"] == "two"
    assert sorted(store.entries()) == ["k"]


def test_bad_config_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken").write_text("{")
    with pytest.raises(PullInputError, match="storage config 'broken' is not valid JSON"):
        resolve_storage_config(parse_model_key('{"storage_key": "broken"}'), StorageConfigDir(str(tmp_path)))

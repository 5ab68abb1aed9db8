"""Local layout and path confinement (pure functions, table-driven)."""

from __future__ import annotations

import os

import pytest

from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.paths import (
    check_model_id,
    confined_join,
    disk_size,
    normalize_prefix,
    remote_basename,
    schema_basename,
)
from modelmesh.storage.providers.base import RemoteObject, plan_objects


@pytest.mark.parametrize("path,name", [
    ("models/mnist", "mnist"), ("models/mnist/", "mnist"), ("model.onnx", "model.onnx"),
    ("", "_model"), (".", "_model"), ("/", "_model"), ("a/./", "_model"),
])
def test_local_name(path, name):
    assert remote_basename(path) == name


@pytest.mark.parametrize("schema,model,name", [
    ("schemas/s.json", "mnist", "s.json"), ("other/mnist", "mnist", "_schema.json"),
])
def test_schema_name(schema, model, name):
    assert schema_basename(schema, model) == name


@pytest.mark.parametrize("model_id", ["", ".", "..", "a/b", "a\x00b", "..\\x"])
def test_bad_model_ids(model_id):
    with pytest.raises(PullInputError, match="invalid model id"):
        check_model_id(model_id)


@pytest.mark.parametrize("hostile", [
    "../../etc/passwd", "a/../../x", "/etc/passwd", "..", "a/..", "\\windows", "a\\..\\..\\x", "x\x00y",
])
def test_confined_join_rejects_escapes(tmp_path, hostile):
    with pytest.raises(PullInputError):
        confined_join(str(tmp_path), hostile)


def test_confined_join_rejects_symlinked_parent(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "link").symlink_to("/tmp")
    with pytest.raises(PullInputError, match="escapes"):
        confined_join(str(tmp_path / "base"), "link/x")


def test_confined_join_normalises_harmless_names(tmp_path):
    assert confined_join(str(tmp_path), "a//./b") == os.path.join(tmp_path, "a", "b")


def _objs(*items):
    return [RemoteObject(k, s) for k, s in items]


def test_prefix_never_matches_a_sibling(tmp_path):
    plan = plan_objects("models/mnist", _objs(("models/mnist/a", 1), ("models/mnist2/b", 1),
                                              ("models/mnist.bak", 1)), str(tmp_path / "m"), "x")
    assert [(o.key, p) for o, p in plan] == [("models/mnist/a", str(tmp_path / "m" / "a"))]


def test_key_equal_to_prefix_is_a_single_file(tmp_path):
    plan = plan_objects("models/model.onnx", _objs(("models/model.onnx", 5), ("models/model.onnx2", 1)),
                        str(tmp_path / "f"), "x")
    assert [(o.key, p) for o, p in plan] == [("models/model.onnx", str(tmp_path / "f"))]


def test_skips_folder_markers_and_empty_objects(tmp_path):
    plan = plan_objects("m", _objs(("m/", 0), ("m/d/", 0), ("m/empty", 0), ("m/w", 3)), str(tmp_path / "m"), "x")
    assert [o.key for o, _ in plan] == ["m/w"]


def test_zero_matching_objects_is_an_error(tmp_path):
    with pytest.raises(PullError, match="no objects found under 'models/mnist' in bucket b"):
        plan_objects("models/mnist", _objs(("models/mnist2/a", 1), ("models/mnist/", 0)), str(tmp_path), "bucket b")


def test_empty_path_takes_the_whole_store(tmp_path):
    plan = plan_objects("", _objs(("a", 1), ("d/b", 1)), str(tmp_path / "_model"), "x")
    assert sorted(p for _, p in plan) == [str(tmp_path / "_model" / "a"), str(tmp_path / "_model" / "d" / "b")]


def test_hostile_key_in_listing_fails_the_plan(tmp_path):
    with pytest.raises(PullInputError, match="escapes"):
        plan_objects("m", _objs(("m/ok", 1), ("m/../../../etc/passwd", 1)), str(tmp_path / "m"), "x")


def test_object_and_folder_with_same_name_is_ambiguous(tmp_path):
    with pytest.raises(PullInputError, match="both an object and a folder"):
        plan_objects("m", _objs(("m", 1), ("m/a", 1)), str(tmp_path / "m"), "x")


@pytest.mark.parametrize("path,prefix", [("/a/b/", "a/b"), ("./a//b", "a/b"), ("", ""), ("/", "")])
def test_normalize_prefix(path, prefix):
    assert normalize_prefix(path) == prefix


def test_normalize_prefix_rejects_dotdot():
    with pytest.raises(PullInputError):
        normalize_prefix("a/../b")


def test_disk_size_follows_symlinks_once(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w").write_bytes(b"x" * 100)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "link").symlink_to(tmp_path / "data")
    (tmp_path / "m" / "loop").symlink_to(tmp_path / "m")  # a cycle must not hang
    (tmp_path / "m" / "f").write_bytes(b"y" * 10)
    assert disk_size(str(tmp_path / "m")) == 110

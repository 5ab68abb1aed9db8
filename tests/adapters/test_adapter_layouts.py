"""Layouts, table-driven: pulled files -> the directory each model server loads from,
for every model type in the reference, incl. schema and config rewriting cases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelmesh.adapters import pbtxt
from modelmesh.adapters.errors import InvalidModel
from modelmesh.adapters.layouts import mlserver, ovms, torchserve, triton
from modelmesh.adapters.request import model_type_of
from modelmesh.adapters.schema import parse_schema

SCHEMA = {"inputs": [{"name": "IN", "datatype": "FP32", "shape": [-1, 784]}],
          "outputs": [{"name": "OUT", "datatype": "INT64", "shape": [-1, 1]}]}

NATIVE_CONFIG = """
name: "original-name"  # Triton insists this equals the dir name
backend: "python"
max_batch_size: {mbs}
input [ {{ name: "OLD_IN", data_type: TYPE_FP64, dims: [ 4 ] }} ]
output [ {{ name: "OLD_OUT", data_type: TYPE_FP64, dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 2 }} ]
"""


def make_source(src: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)


def tree(target: Path, src: Path) -> dict[str, str]:
    """Entries under target: symlinks as `-> <path relative to src>`, files as `file`
    (plain directories are implied by their contents)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(target):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(target).as_posix()
            if p.is_symlink():
                out[rel] = "-> " + os.path.relpath(os.readlink(p), src)
            elif p.is_file():
                out[rel] = "file"
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    return out


def run_layout(tmp_path: Path, module, model_type: str, files: dict[str, str], model_path: str,
               schema: dict | None = None, model_id: str = "m1"):
    src = tmp_path / "pulled" / model_id
    make_source(src, files)
    schema_path = None
    if schema is not None:
        schema_path = src / "_schema.json"
        schema_path.write_text(json.dumps(schema))
    root = tmp_path / "layout"
    result = module.lay_out(str(root), model_id, model_type, str(src / model_path),
                            str(schema_path) if schema_path else None)
    return Path(result), src


# --- Triton ---------------------------------------------------------------------------------

TRITON_CASES = [
    # id, model type, source files, model path, expected entries
    ("onnx-file", "onnx", {"mnist.onnx": "x"}, "mnist.onnx", {"1/model.onnx": "-> mnist.onnx"}),
    ("onnx-dir-one-file", "onnx", {"d/weights.onnx": "x"}, "d", {"1/model.onnx": "-> d/weights.onnx"}),
    ("onnx-version-dirs", "onnx", {"d/1/model.onnx": "a", "d/3/model.onnx": "b"}, "d",
     {"3/model.onnx": "-> d/3/model.onnx"}),
    ("tensorflow-savedmodel-dir", "tensorflow", {"d/saved_model.pb": "x", "d/variables/v.index": "x"}, "d",
     {"1/model.savedmodel": "-> d"}),
    ("tensorflow-graphdef-file", "tensorflow", {"model.pb": "x"}, "model.pb",
     {"1/model.graphdef": "-> model.pb"}),
    ("keras-savedmodel-dir", "keras", {"k/saved_model.pb": "x", "k/variables/v": "x"}, "k",
     {"1/model.savedmodel": "-> k"}),
    ("tensorrt-plan", "tensorrt", {"engine.plan": "x"}, "engine.plan", {"1/model.plan": "-> engine.plan"}),
    ("pytorch-file", "pytorch", {"traced.pt": "x"}, "traced.pt", {"1/model.pt": "-> traced.pt"}),
    ("pytorch-dir-one-file", "pytorch", {"d/traced.pt": "x"}, "d", {"1/model.pt": "-> d/traced.pt"}),
    ("legacy-schema-file-ignored", "onnx", {"d/model.onnx": "x", "d/_schema.json": "{}"}, "d",
     {"1/model.onnx": "-> d/model.onnx"}),
    ("unknown-type-dir", "custom", {"d/a.bin": "x", "d/b.bin": "y"}, "d", {"1": "-> d"}),
    ("unknown-type-file", "custom", {"weights.bin": "x"}, "weights.bin", {"1/weights.bin": "-> weights.bin"}),
    ("native-repository", "triton", {"r/config.pbtxt": NATIVE_CONFIG.format(mbs=0), "r/1/model.py": "x"}, "r",
     {"config.pbtxt": "file", "1": "-> r/1"}),
]


@pytest.mark.parametrize("model_type, files, model_path, expected",
                         [c[1:] for c in TRITON_CASES], ids=[c[0] for c in TRITON_CASES])
def test_triton_layout(tmp_path, model_type, files, model_path, expected):
    target, src = run_layout(tmp_path, triton, model_type, files, model_path)
    assert target == tmp_path / "layout" / "m1"
    got = tree(target, src)
    assert got == expected
    for link in (k for k, v in got.items() if v.startswith("->")):
        assert (target / link).exists(), f"dangling link {link}"


def test_triton_native_config_loses_name_keeps_the_rest(tmp_path):
    target, _ = run_layout(tmp_path, triton, "triton",
                           {"r/config.pbtxt": NATIVE_CONFIG.format(mbs=0), "r/1/model.py": "x"}, "r")
    config = pbtxt.parse((target / "config.pbtxt").read_text())
    assert config.get("name") == []
    assert config.first("backend") == '"python"'
    assert [pbtxt.unquote(m.first("name")) for m in config.get("input")] == ["OLD_IN"]
    assert config.get("instance_group")[0].first("count") == "2"


@pytest.mark.parametrize("max_batch_size, schema, expected_in_dims, expected_out_dims", [
    (0, SCHEMA, ["-1", "784"], ["-1", "1"]),  # no batching: dims as the schema says
    (8, SCHEMA, ["784"], ["1"]),  # batching: Triton adds the batch dim, the schema's -1 is stripped
])
def test_triton_schema_replaces_inputs_and_outputs(tmp_path, max_batch_size, schema, expected_in_dims,
                                                   expected_out_dims):
    target, _ = run_layout(tmp_path, triton, "triton",
                           {"r/config.pbtxt": NATIVE_CONFIG.format(mbs=max_batch_size), "r/1/model.py": "x"}, "r",
                           schema=schema)
    config = pbtxt.parse((target / "config.pbtxt").read_text())
    (inp,), (out,) = config.get("input"), config.get("output")
    assert (pbtxt.unquote(inp.first("name")), inp.first("data_type"), inp.get("dims")) == \
        ("IN", "TYPE_FP32", expected_in_dims)
    assert (pbtxt.unquote(out.first("name")), out.first("data_type"), out.get("dims")) == \
        ("OUT", "TYPE_INT64", expected_out_dims)
    assert config.first("max_batch_size") == str(max_batch_size)


def test_triton_schema_with_outputs_only_keeps_native_inputs(tmp_path):
    target, _ = run_layout(tmp_path, triton, "triton",
                           {"r/config.pbtxt": NATIVE_CONFIG.format(mbs=0), "r/1/model.py": "x"}, "r",
                           schema={"outputs": SCHEMA["outputs"]})
    config = pbtxt.parse((target / "config.pbtxt").read_text())
    assert [pbtxt.unquote(m.first("name")) for m in config.get("input")] == ["OLD_IN"]
    assert [pbtxt.unquote(m.first("name")) for m in config.get("output")] == ["OUT"]


def test_triton_schema_alone_generates_config(tmp_path):
    target, _ = run_layout(tmp_path, triton, "onnx", {"m.onnx": "x"}, "m.onnx", schema=SCHEMA)
    config = pbtxt.parse((target / "config.pbtxt").read_text())
    assert config.first("backend") == '"onnxruntime"'
    assert [m.get("dims") for m in config.get("input")] == [["-1", "784"]]
    assert [m.first("data_type") for m in config.get("output")] == ["TYPE_INT64"]


@pytest.mark.parametrize("model_type, files, model_path, schema, message", [
    ("triton", {"r/config.pbtxt": NATIVE_CONFIG.format(mbs=8), "r/1/model.py": "x"}, "r",
     {"inputs": [{"name": "IN", "datatype": "FP32", "shape": [1, 784]}]}, "first dimension of every input"),
    ("triton", {"r/config.pbtxt": "name: \"x\" input [ {", "r/1/model.py": "x"}, "r", None, "config.pbtxt"),
    ("keras", {"model.h5": "x"}, "model.h5", None, "SavedModel"),
    ("onnx", {"d/.keep": ""}, "missing", None, "does not exist"),
    ("onnx", {"m.onnx": "x"}, "m.onnx", {"inputs": [{"name": "IN", "datatype": "FLOAT", "shape": [1]}]},
     "unknown datatype"),
])
def test_triton_layout_errors(tmp_path, model_type, files, model_path, schema, message):
    with pytest.raises(InvalidModel, match=message):
        run_layout(tmp_path, triton, model_type, files, model_path, schema=schema)


# --- MLServer -------------------------------------------------------------------------------

MLSERVER_CASES = [
    # id, model type, files, model path, input settings, expected tree, expected settings (uri relative to target)
    ("single-file", "custom", {"some-file": "x"}, "some-file", None,
     {"model-settings.json": "file", "some-file": "-> some-file"},
     {"name": "m1", "parameters": {"uri": "some-file"}}),
    ("dir-with-files", "custom", {"d/a": "x", "d/sub/b": "y"}, "d", None,
     {"model-settings.json": "file", "d": "-> d"}, {"name": "m1", "parameters": {"uri": "d"}}),
    ("sklearn-file", "sklearn", {"model.joblib": "x"}, "model.joblib", None,
     {"model-settings.json": "file", "model.joblib": "-> model.joblib"},
     {"name": "m1", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "model.joblib"}}),
    ("xgboost-file", "xgboost", {"model.bst": "x"}, "model.bst", None, None,
     {"name": "m1", "implementation": "mlserver_xgboost.XGBoostModel", "parameters": {"uri": "model.bst"}}),
    ("lightgbm-file", "lightgbm", {"model.bst": "x"}, "model.bst", None, None,
     {"name": "m1", "implementation": "mlserver_lightgbm.LightGBMModel", "parameters": {"uri": "model.bst"}}),
    ("native-sklearn", "sklearn", {"model/model-settings.json": "", "model/model.joblib": "x"}, "model",
     {"name": "my sklearn model", "implementation": "mlserver_sklearn.SKLearnModel"},
     {"model-settings.json": "file", "model.joblib": "-> model/model.joblib"},
     {"name": "m1", "implementation": "mlserver_sklearn.SKLearnModel"}),
    ("native-uri-rerooted", "xgboost", {"dir/model-settings.json": "", "dir/mushroom.json": "x"}, "dir",
     {"name": "mushroom", "implementation": "mlserver_xgboost.XGBoostModel",
      "parameters": {"uri": "./mushroom.json", "version": "v0.1.0"}}, None,
     {"name": "m1", "implementation": "mlserver_xgboost.XGBoostModel",
      "parameters": {"uri": "mushroom.json", "version": "v0.1.0"}}),
    ("native-at-model-root", "custom", {"model-settings.json": "", "somefile": "x", "somedir/data": "y"}, "",
     {}, {"model-settings.json": "file", "somefile": "-> somefile", "somedir": "-> somedir"}, {"name": "m1"}),
    ("native-mllib-dirs", "mllib", {"ml/model-settings.json": "", "ml/data/f": "x", "ml/metadata/f": "x"}, "ml", {},
     {"model-settings.json": "file", "data": "-> ml/data", "metadata": "-> ml/metadata"}, {"name": "m1"}),
]


def _settings_with_abs_uri(expected: dict, target: Path) -> dict:
    expected = json.loads(json.dumps(expected))
    if "uri" in expected.get("parameters", {}):
        expected["parameters"]["uri"] = str(target / expected["parameters"]["uri"])
    return expected


@pytest.mark.parametrize("model_type, files, model_path, settings, expected_tree, expected_settings",
                         [c[1:] for c in MLSERVER_CASES], ids=[c[0] for c in MLSERVER_CASES])
def test_mlserver_layout(tmp_path, model_type, files, model_path, settings, expected_tree, expected_settings):
    if settings is not None:
        files = {**files, f"{model_path}/model-settings.json".lstrip("/"): json.dumps(settings)}
    target, src = run_layout(tmp_path, mlserver, model_type, files, model_path)
    if expected_tree is not None:
        assert tree(target, src) == expected_tree
    written = json.loads((target / "model-settings.json").read_text())
    assert written == _settings_with_abs_uri(expected_settings, target)


@pytest.mark.parametrize("native", [False, True])
def test_mlserver_schema_is_injected(tmp_path, native):
    files = {"model.json": "x"}
    if native:
        files = {"my-model/model.json": "x", "my-model/model-settings.json": json.dumps({
            "name": "some-name", "outputs": [{"name": "OLD", "datatype": "FP32", "shape": [1]}],
            "parameters": {"uri": "./model.json"}})}
    target, _ = run_layout(tmp_path, mlserver, "xgboost", files, "my-model" if native else "model.json",
                           schema=SCHEMA)
    written = json.loads((target / "model-settings.json").read_text())
    assert written["name"] == "m1"
    assert written["inputs"] == SCHEMA["inputs"] and written["outputs"] == SCHEMA["outputs"]
    assert written["parameters"]["uri"] == str(target / "model.json")


@pytest.mark.parametrize("files, model_path, message", [
    ({"d/model-settings.json": json.dumps({"parameters": {"uri": "../../../etc/passwd"}})}, "d", "escapes"),
    ({"d/model-settings.json": "{not json"}, "d", "not valid JSON"),
    ({"model-settings.json": "{}"}, "model-settings.json", "model's directory"),
])
def test_mlserver_layout_errors(tmp_path, files, model_path, message):
    with pytest.raises(InvalidModel, match=message):
        run_layout(tmp_path, mlserver, "sklearn", files, model_path)


def test_mlserver_hidden_settings_are_listed_for_the_purge(tmp_path):
    """A loaded model's settings leave MLServer's repository scan (the exact name
    model-settings.json) but stay findable for the start-up purge."""
    target, _ = run_layout(tmp_path, mlserver, "sklearn", {"model.joblib": "x"}, "model.joblib")
    root = target.parent
    settings = (target / "model-settings.json").read_text()
    (root / "loading").mkdir()  # laid out, not loaded yet: MLServer's own index lists it
    (root / "loading" / "model-settings.json").write_text("{}")
    (root / "stray-file").write_text("")
    os.symlink(target, root / "a-link")  # not a model dir of ours
    assert mlserver.hidden_model_ids(str(root)) == []

    mlserver.hide_settings(str(target))
    assert not (target / "model-settings.json").exists()
    assert (target / mlserver.LOADED_SETTINGS_FILE).read_text() == settings
    assert sorted(p.parent.name for p in root.glob("**/model-settings.json")) == ["loading"]
    assert mlserver.hidden_model_ids(str(root)) == [target.name]
    assert mlserver.hidden_model_ids(str(tmp_path / "missing")) == []


# --- OVMS and TorchServe --------------------------------------------------------------------

OVMS_CASES = [
    ("onnx-file", "onnx", {"x.onnx": "x"}, "x.onnx", {"1/model.onnx": "-> x.onnx"}),
    ("openvino-file", "openvino_ir", {"m.xml": "x"}, "m.xml", {"1/m.xml": "-> m.xml"}),
    ("ir-dir", "openvino_ir", {"d/m.xml": "x", "d/m.bin": "y"}, "d", {"1": "-> d"}),
    ("version-dirs", "tensorflow", {"d/1/saved_model.pb": "x", "d/2/saved_model.pb": "y"}, "d", {"2": "-> d/2"}),
]


@pytest.mark.parametrize("model_type, files, model_path, expected",
                         [c[1:] for c in OVMS_CASES], ids=[c[0] for c in OVMS_CASES])
def test_ovms_layout(tmp_path, model_type, files, model_path, expected):
    target, src = run_layout(tmp_path, ovms, model_type, files, model_path)
    assert target == tmp_path / "layout" / "m1"  # the base_path written into OVMS's config
    assert tree(target, src) == expected


@pytest.mark.parametrize("files, model_path, error", [
    ({"model.mar": "x"}, "model.mar", None),
    ({"d/model.mar": "x", "d/README": "y"}, "d", None),
    ({"d/model.pt": "x"}, "d", "none"),
    ({"d/a.mar": "x", "d/b.mar": "y"}, "d", "a.mar, b.mar"),
])
def test_torchserve_layout(tmp_path, files, model_path, error):
    if error:
        with pytest.raises(InvalidModel, match=error):
            run_layout(tmp_path, torchserve, "pytorch-mar", files, model_path)
        return
    link, src = run_layout(tmp_path, torchserve, "pytorch-mar", files, model_path)
    assert link == tmp_path / "layout" / "m1.mar"
    assert link.is_symlink() and link.resolve().suffix == ".mar" and link.resolve().parent.is_relative_to(src)


# --- schema, model type, pbtxt --------------------------------------------------------------

@pytest.mark.parametrize("key, fallback, expected", [
    ({"model_type": {"name": "SKLearn", "version": "1"}}, "", "sklearn"),
    ({"model_type": "onnx"}, "", "onnx"),
    ({}, "mt:tensorflow:2|pv:grpc-v2", "tensorflow"),
    ({}, "rt:triton-2.x", ""),
    ({}, "keras", "keras"),
])
def test_model_type(key, fallback, expected):
    assert model_type_of(key, fallback) == expected


@pytest.mark.parametrize("text, message", [
    ("[]", "JSON object"),
    ('{"inputs": {}}', "must be a list"),
    ('{"inputs": [{"datatype": "FP32", "shape": [1]}]}', "needs a name"),
    ('{"inputs": [{"name": "a", "datatype": "FP32", "shape": ["1"]}]}', "list of integers"),
])
def test_schema_errors(text, message):
    with pytest.raises(InvalidModel, match=message):
        parse_schema(text)


def test_pbtxt_round_trip_keeps_every_field():
    text = """
    name: "x"  # comment
    platform: 'onnxruntime_onnx'
    max_batch_size: 8
    input [ { name: "a" data_type: TYPE_FP32 dims: [ 1, -1 ] reshape { shape: [] } } ]
    dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
    parameters: { key: "k" value: { string_value: "a" "b" } }
    optimization < execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } >
    """
    parsed = pbtxt.parse(text)
    assert pbtxt.parse(pbtxt.format(parsed)) == parsed
    assert parsed.first("dynamic_batching").get("preferred_batch_size") == ["4", "8"]
    accelerator = parsed.first("optimization").first("execution_accelerators").first("cpu_execution_accelerator")
    assert accelerator.first("name") == '"openvino"'


@pytest.mark.parametrize("text", ['input [ { name: "a" ', "name", 'name: "x" }', "a: @"])
def test_pbtxt_errors(text):
    with pytest.raises(pbtxt.PbtxtError):
        pbtxt.parse(text)

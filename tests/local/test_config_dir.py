"""The config dir of `modelmesh local` as files on disk (no processes): what each document
becomes, local storage through linked volumes, per-file errors."""

from __future__ import annotations

import json
import os

from harness.local_mode import isvc_yaml

from modelmesh.apps.local.declared import ConfigDir, LocalStorage
from modelmesh.apps.local.ports import PortProblem, check_ports
from modelmesh.apps.local.status import render, write_snapshot


def _config(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    return config, ConfigDir(config, LocalStorage(tmp_path / "mounts"))


def test_relative_and_file_uris_become_linked_volumes(tmp_path):
    config, cdir = _config(tmp_path)
    (config / "models" / "a").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "b"
    elsewhere.mkdir(parents=True)
    (config / "a.yaml").write_text(isvc_yaml("a", "models/a"))
    (config / "b.yaml").write_text(isvc_yaml("b", f"file://{elsewhere}"))
    assert cdir.scan()
    models, invalid, errors = cdir.models()
    assert not invalid and not errors
    for name, directory in (("a", config / "models"), ("b", elsewhere.parent)):
        spec = models[name].spec
        assert spec.storage_params["type"] == "pvc" and spec.path == name
        link = tmp_path / "mounts" / spec.storage_params["name"]
        assert os.readlink(link) == os.path.realpath(directory)
    # Same file, same id; a changed path, a new concrete model id.
    first = models["a"].model_id
    assert not cdir.scan()
    (config / "a.yaml").write_text(isvc_yaml("a", f"file://{elsewhere}"))
    assert cdir.scan()
    assert cdir.models()[0]["a"].model_id != first


def test_remote_uris_and_predictors_are_kept(tmp_path):
    config, cdir = _config(tmp_path)
    (config / "two.yaml").write_text(isvc_yaml("s3m", "s3://bucket/path/m") + "---\n" + """\
apiVersion: serving.kserve.io/v1alpha1
kind: Predictor
metadata: {name: pred}
spec:
  modelType: {name: sklearn}
  storage: {key: myS3, path: p/q}
""")
    cdir.scan()
    models, _, _ = cdir.models()
    assert models["s3m"].spec.storage_params == {"type": "s3", "bucket": "bucket"}
    assert models["pred"].spec.owner == "ksp" and models["pred"].spec.storage_key == "myS3"
    assert models["pred"].label == "mt:sklearn"


def test_bad_documents_are_errors_of_their_file_only(tmp_path):
    config, cdir = _config(tmp_path)
    (config / "good.yaml").write_text(isvc_yaml("good", "models/good"))
    cdir.scan()
    (config / "bad.yaml").write_text("a: [\n")
    (config / "dup.yaml").write_text(isvc_yaml("good", "models/other"))  # a later file, though first by name
    (config / "other.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
                                       + isvc_yaml("up", "gs://b/p").replace("modelFormat:\n        name: sklearn\n",
                                                                             "modelFormat: {}\n"))
    (config / "runtime.yaml").write_text("kind: ServingRuntime\nmetadata: {name: mlserver-1.x}\n---\n"
                                         "kind: ClusterServingRuntime\nmetadata: {name: mine}\n")
    (config / "notes.txt").write_text("not yaml, not read")
    cdir.scan()
    models, invalid, errors = cdir.models()
    assert list(models) == ["good"] and models["good"].file == str(config / "good.yaml")
    assert errors[str(config / "bad.yaml")][0].startswith("invalid YAML (line 2)")
    assert "already declared" in errors[str(config / "dup.yaml")][0]
    assert "kind 'ConfigMap' is not used" in errors[str(config / "other.yaml")][0]
    assert [(i.name, i.reason) for i in invalid] == [("up", "InvalidPredictorSpec")]
    assert "built into local mode" in cdir.notes()[str(config / "runtime.yaml")][0]
    assert [(p, d["metadata"]["name"]) for p, d in cdir.runtime_documents()] == [(str(config / "runtime.yaml"), "mine")]
    (config / "bad.yaml").unlink()
    assert cdir.scan()
    assert str(config / "bad.yaml") not in cdir.models()[2]


def test_file_uri_must_be_absolute(tmp_path):
    config, cdir = _config(tmp_path)
    (config / "rel.yaml").write_text(isvc_yaml("rel", "file://models/x"))
    cdir.scan()
    _, invalid, _ = cdir.models()
    assert invalid[0].reason == "InvalidPredictorSpec" and "absolute path" in invalid[0].message


def test_taken_and_repeated_ports_are_named(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        try:
            check_ports("127.0.0.1", {"--grpc-port": port})
        except PortProblem as e:
            assert str(e) == f"port {port} (--grpc-port) on 127.0.0.1 is in use; pick another with --grpc-port"
        else:
            raise AssertionError("a taken port passed the check")
    try:
        check_ports("127.0.0.1", {"--grpc-port": 8033, "--rest-port": 8033})
    except PortProblem as e:
        assert str(e) == "--rest-port 8033 is also --grpc-port; give each its own port"
    else:
        raise AssertionError("a repeated port passed the check")


def test_status_of_a_stopped_mode_says_so(tmp_path):
    snapshot = {"pid": 2**22 + 12345, "state": "running", "ready": True, "config_dir": "/c", "endpoints": {},
                "runtimes": [], "models": [{
                    "name": "m", "kind": "InferenceService", "available": False, "activeModelState": "FailedToLoad",
                    "targetModelState": "", "transitionStatus": "UpToDate", "totalCopies": 0,
                    "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "boom"}}],
                "file_errors": {"/c/x.yaml": ["invalid YAML"]}}
    written = write_snapshot(tmp_path, snapshot, None)
    assert json.loads((tmp_path / "status.json").read_text()) == snapshot
    assert write_snapshot(tmp_path, snapshot, written) == written
    text, code = render(json.loads(written), tmp_path)
    assert code == 3 and "not running" in text.splitlines()[0]
    assert "FailedToLoad" in text and "ModelLoadFailed  boom" in text and "/c/x.yaml: invalid YAML" in text
    assert render(None, tmp_path)[1] == 3


def test_custom_runtime_documents(tmp_path):
    from modelmesh.apps.local.custom_runtime import InvalidRuntime, parse_custom_runtime

    doc = {"kind": "ServingRuntime", "metadata": {"name": "rt"}, "spec": {
        "supportedModelFormats": [{"name": "fmt", "autoSelect": True}], "grpcDataEndpoint": "port:9001",
        "containers": [{"name": "s", "command": ["srv"], "args": ["--dir", "$(MODELMESH_MODELS_DIR)", "$(X)"],
                        "env": [{"name": "X", "value": "x1"}]}],
        "builtInAdapter": {"serverType": "Triton", "runtimeManagementPort": 9002}}}
    rt = parse_custom_runtime(doc)
    assert (rt.server_type, rt.data_port, rt.management_port, rt.models_subdir) == ("triton", 9001, 9002,
                                                                                    "_triton_models")
    assert "mt:fmt" in rt.labels() and "rt:rt" in rt.labels()
    launch = rt.launch(tmp_path / "m", 0, 0, 0)
    assert launch.cmd == ["srv", "--dir", str(tmp_path / "m"), "x1"] and launch.ready_ports == (9001,)
    for change, message in (
        ({"builtInAdapter": None}, "spec.grpcEndpoint (the runtime's SPI"),
        ({"grpcDataEndpoint": "unix:/x"}, "spec.grpcDataEndpoint must be port:N"),
        ({"builtInAdapter": {"serverType": "seldon"}}, "serverType must be one of"),
        ({"containers": [{"name": "s", "image": "i"}]}, "command is required in local mode"),
    ):
        bad = {**doc, "spec": {**doc["spec"], **change}}
        try:
            parse_custom_runtime(bad)
        except InvalidRuntime as e:
            assert message in str(e)
        else:
            raise AssertionError(f"accepted {change}")
    try:
        parse_custom_runtime({**doc, "metadata": {"name": "mlserver-1.x"}})
    except InvalidRuntime as e:
        assert "built-in runtime" in str(e)

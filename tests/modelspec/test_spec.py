"""Spec parsing, storageUri mapping, ModelInfo and concrete ids (shared with local mode)."""

import json

import pytest

from modelmesh.modelspec import (
    InvalidSpec,
    concrete_model_id,
    model_info_key,
    parse_inference_service,
    parse_predictor,
    parse_storage_uri,
    type_label,
)
from modelmesh.modelspec.runtime_labels import runtime_labels, type_constraints


def predictor(spec, name="p1"):
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def isvc(predictor_section, annotations=None, name="i1"):
    ann = {"serving.kserve.io/deploymentMode": "ModelMesh", **(annotations or {})}
    return {"metadata": {"name": name, "namespace": "ns", "annotations": ann}, "spec": {"predictor": predictor_section}}


@pytest.mark.parametrize("uri,params,path", [
    ("s3://bkt/models/iris", {"type": "s3", "bucket": "bkt"}, "models/iris"),
    ("gs://gbkt/a/b", {"type": "gcs", "bucket": "gbkt"}, "a/b"),
    ("pvc://claim-1/dir/model.joblib", {"type": "pvc", "name": "claim-1"}, "dir/model.joblib"),
    ("https://acct.blob.core.windows.net/cont/p/m.onnx",
     {"type": "azure", "account_name": "acct", "container": "cont"}, "p/m.onnx"),
    ("https://example.com:8443/files/model.zip", {"type": "http", "url": "https://example.com:8443"},
     "files/model.zip"),
    ("http://127.0.0.1:9000/m?x=1", {"type": "http", "url": "http://127.0.0.1:9000"}, "m?x=1"),
])
def test_storage_uri_mapping(uri, params, path):
    assert parse_storage_uri(uri) == (params, path)


@pytest.mark.parametrize("uri", ["ftp://x/y", "s3:///nobucket", "s3://b/../../etc/passwd", "nonsense"])
def test_bad_storage_uri_is_invalid_spec(uri):
    with pytest.raises(InvalidSpec) as e:
        parse_storage_uri(uri)
    assert e.value.reason == "InvalidPredictorSpec" and e.value.message


def test_predictor_spec_and_model_info():
    spec = parse_predictor(predictor({
        "modelType": {"name": "sklearn", "version": "0"}, "runtime": {"name": "mlserver-1.x"},
        "protocolVersion": "grpc-v2",
        "storage": {"path": "/sklearn/iris", "key": "localMinIO", "parameters": {"bucket": "b1"},
                    "schemaPath": "s.json"},
    }))
    assert (spec.owner, spec.path) == ("ksp", "sklearn/iris")
    assert (spec.storage_key, spec.runtime) == ("localMinIO", "mlserver-1.x")
    assert type_label(spec) == "rt:mlserver-1.x|pv:grpc-v2"
    assert json.loads(model_info_key(spec)) == {
        "storage_key": "localMinIO", "storage_params": {"bucket": "b1"},
        "model_type": {"name": "sklearn", "version": "0"}, "schema_path": "s.json"}
    mid = concrete_model_id(spec)
    assert mid.startswith("p1__ksp-") and len(mid.rsplit("-", 1)[1]) == 10
    assert mid == concrete_model_id(parse_predictor(predictor({
        "modelType": {"name": "sklearn", "version": "0"}, "runtime": {"name": "mlserver-1.x"},
        "protocolVersion": "grpc-v2",
        "storage": {"path": "/sklearn/iris", "key": "localMinIO", "parameters": {"bucket": "b1"},
                    "schemaPath": "s.json"}})))


def test_spec_change_gives_new_model_id():
    a = parse_predictor(predictor({"modelType": {"name": "sklearn"}, "path": "m/v1"}))
    b = parse_predictor(predictor({"modelType": {"name": "sklearn"}, "path": "m/v2"}))
    assert concrete_model_id(a) != concrete_model_id(b)
    assert type_label(a) == "mt:sklearn"
    assert json.loads(model_info_key(a)) == {"model_type": {"name": "sklearn"}}


def test_deprecated_s3_storage_form():
    spec = parse_predictor(predictor({"modelType": {"name": "onnx"}, "path": "x",
                                      "storage": {"s3": {"secretKey": "k1", "bucket": "bb"}}}))
    assert spec.storage_key == "k1" and dict(spec.storage_params) == {"type": "s3", "bucket": "bb"}


def test_predictor_without_storage():
    with pytest.raises(InvalidSpec) as e:
        parse_predictor(predictor({"modelType": {"name": "sklearn"}}))
    assert (e.value.reason, e.value.message) == ("ModelLoadFailed", "Predictor Storage field missing")


def test_isvc_new_format():
    spec = parse_inference_service(isvc(
        {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://bkt/iris",
                   "storage": {"parameters": {"bucket": "other", "region": "r"}, "key": "k"}}}))
    assert spec.owner == "isvc" and spec.path == "iris"
    assert dict(spec.storage_params) == {"type": "s3", "bucket": "bkt", "region": "r"}  # the URI wins
    assert type_label(spec) == "mt:sklearn"


def test_isvc_old_format_with_annotations():
    spec = parse_inference_service(isvc(
        {"sklearn": {"storageUri": "s3://b/p", "protocolVersion": "v2"}},
        {"serving.kserve.io/servingRuntime": "mlserver-1.x", "serving.kserve.io/secretKey": "myS3"}))
    assert (spec.model_type, spec.runtime, spec.storage_key, spec.protocol) == ("sklearn", "mlserver-1.x", "myS3", "v2")
    assert type_label(spec) == "rt:mlserver-1.x|pv:v2"


@pytest.mark.parametrize("section,reason,needle", [
    ({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/p", "storage": {"path": "p"}}},
     "InvalidPredictorSpec", "only one of"),
    ({"model": {"modelFormat": {"name": "sklearn"}}}, "ModelLoadFailed", "Storage field missing"),
    ({"model": {"storageUri": "s3://b/p"}}, "InvalidPredictorSpec", "modelFormat.name"),
    ({"sklearn": {"storageUri": "s3://b/p"}, "onnx": {"storageUri": "s3://b/q"}}, "InvalidPredictorSpec",
     "more than one"),
    ({}, "InvalidPredictorSpec", "needs model"),
    ({"sklearn": "not-a-map"}, "InvalidPredictorSpec", "must be an object"),
    ({"sklearn": {"storageUri": "s3://b/p", "storage": "x"}}, "InvalidPredictorSpec", "must be an object"),
    ({"sklearn": {"storageUri": 42}}, "InvalidPredictorSpec", "must be a string"),
])
def test_isvc_invalid(section, reason, needle):
    with pytest.raises(InvalidSpec) as e:
        parse_inference_service(isvc(section))
    assert e.value.reason == reason and needle in e.value.message


def test_runtime_labels_and_type_constraints():
    spec = {"supportedModelFormats": [{"name": "sklearn", "version": "0", "autoSelect": True},
                                      {"name": "xgboost", "autoSelect": False}],
            "protocolVersions": ["grpc-v2"]}
    assert runtime_labels("mlserver-1.x", spec, rest_proxy_enabled=True) == [
        "mt:sklearn", "mt:sklearn:0", "pv:grpc-v2", "pv:v2", "rt:mlserver-1.x"]
    assert runtime_labels("mlserver-1.x", spec, rest_proxy_enabled=False) == [
        "mt:sklearn", "mt:sklearn:0", "pv:grpc-v2", "rt:mlserver-1.x"]
    tc = type_constraints([("mlserver-1.x", spec)], rest_proxy_enabled=False)
    assert tc["rt:mlserver-1.x"] == {"required": ["rt:mlserver-1.x"]}
    assert tc["mt:sklearn:0|pv:grpc-v2"] == {"required": ["mt:sklearn:0", "pv:grpc-v2"]}
    assert tc["_default"] == {"required": ["_no_runtime"]}
    assert "mt:xgboost" not in tc

"""Predictor (v1alpha1) and InferenceService (v1beta1, ModelMesh mode) specs -> ModelSpec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelmesh.modelspec.errors import InvalidSpec
from modelmesh.modelspec.storage_uri import parse_storage_uri

OWNER_PREDICTOR = "ksp"
OWNER_ISVC = "isvc"

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
RUNTIME_ANNOTATION = "serving.kserve.io/servingRuntime"
SECRET_KEY_ANNOTATION = "serving.kserve.io/secretKey"

# Old-format InferenceServices name the framework as a key under spec.predictor.
OLD_FORMAT_FRAMEWORKS = ("sklearn", "xgboost", "lightgbm", "tensorflow", "onnx", "pytorch", "triton", "pmml", "paddle")


@dataclass(frozen=True)
class ModelSpec:
    """What the mesh needs to know about one Predictor / InferenceService."""

    name: str
    namespace: str
    owner: str  # vmodel owner: ksp (Predictor) or isvc (InferenceService)
    model_type: str
    model_type_version: str = ""
    runtime: str = ""
    protocol: str = ""
    storage_key: str = ""
    storage_params: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    schema_path: str = ""

    @property
    def vmodel_id(self) -> str:
        return self.name


def is_modelmesh_isvc(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEPLOYMENT_MODE_ANNOTATION, "").lower() == "modelmesh"


def _map(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec.invalid(f"{what} must be an object")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec.invalid(f"{what} must be a map of strings")
    return {str(k): str(v) for k, v in value.items()}


def _meta(obj: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    meta = obj.get("metadata") or {}
    return meta.get("name", ""), meta.get("namespace", ""), dict(meta.get("annotations") or {})


def parse_predictor(obj: Mapping[str, Any]) -> ModelSpec:
    name, namespace, _ = _meta(obj)
    spec = obj.get("spec") or {}
    model_type = spec.get("modelType") or {}
    if not model_type.get("name"):
        raise InvalidSpec.invalid("spec.modelType.name is required")
    storage = spec.get("storage") or {}
    path = storage.get("path") or spec.get("path") or ""
    if not path:
        raise InvalidSpec.storage_missing()
    params = _str_map(storage.get("parameters"), "spec.storage.parameters")
    key = storage.get("key") or ""
    s3 = storage.get("s3") or {}  # deprecated form: {secretKey, bucket}
    if s3:
        key = key or s3.get("secretKey", "")
        if s3.get("bucket"):
            params.setdefault("type", "s3")
            params.setdefault("bucket", s3["bucket"])
    if any(part == ".." for part in path.split("/")):
        raise InvalidSpec.invalid(f"storage path may not contain '..': {path}")
    return ModelSpec(
        name=name, namespace=namespace, owner=OWNER_PREDICTOR,
        model_type=str(model_type["name"]), model_type_version=str(model_type.get("version") or ""),
        runtime=str((spec.get("runtime") or {}).get("name") or ""),
        protocol=str(spec.get("protocolVersion") or ""),
        storage_key=str(key), storage_params=params, path=path.lstrip("/"),
        schema_path=str(storage.get("schemaPath") or spec.get("schemaPath") or ""),
    )


def _storage(section: Mapping[str, Any], annotations: Mapping[str, str]) -> tuple[str, dict[str, str], str, str]:
    """(key, params, path, schema_path) from storageUri / storage of a predictor section."""
    storage = _map(section.get("storage"), "storage")
    uri = section.get("storageUri") or ""
    if not isinstance(uri, str):
        raise InvalidSpec.invalid("storageUri must be a string")
    storage_path = storage.get("path") or ""
    if uri and storage_path:
        raise InvalidSpec.invalid("only one of storageUri and storage.path may be set")
    params = _str_map(storage.get("parameters"), "storage.parameters")
    if uri:
        uri_params, path = parse_storage_uri(uri)
        params.update(uri_params)  # the URI wins over storage.parameters
    elif storage_path:
        path = storage_path.lstrip("/")
        if any(part == ".." for part in path.split("/")):
            raise InvalidSpec.invalid(f"storage path may not contain '..': {storage_path}")
    else:
        raise InvalidSpec.storage_missing()
    key = storage.get("key") or annotations.get(SECRET_KEY_ANNOTATION, "")
    return str(key), params, path, str(storage.get("schemaPath") or "")


def parse_inference_service(obj: Mapping[str, Any]) -> ModelSpec:
    name, namespace, annotations = _meta(obj)
    predictor = (obj.get("spec") or {}).get("predictor")
    if not isinstance(predictor, Mapping):
        raise InvalidSpec.invalid("spec.predictor is required")
    model = predictor.get("model")
    frameworks = [f for f in OLD_FORMAT_FRAMEWORKS if predictor.get(f) is not None]
    if model is not None and frameworks:
        raise InvalidSpec.invalid(f"spec.predictor may set model or a framework ({frameworks[0]}), not both")
    if len(frameworks) > 1:
        raise InvalidSpec.invalid(f"spec.predictor sets more than one framework: {', '.join(frameworks)}")
    if model is not None:
        model = _map(model, "spec.predictor.model")
        fmt = _map(model.get("modelFormat"), "spec.predictor.model.modelFormat")
        if not fmt.get("name"):
            raise InvalidSpec.invalid("spec.predictor.model.modelFormat.name is required")
        model_type, version = str(fmt["name"]), str(fmt.get("version") or "")
        section = model
        runtime = model.get("runtime") or annotations.get(RUNTIME_ANNOTATION, "")
    elif frameworks:
        section = _map(predictor[frameworks[0]], f"spec.predictor.{frameworks[0]}")
        model_type, version = frameworks[0], ""
        runtime = annotations.get(RUNTIME_ANNOTATION, "")
    else:
        raise InvalidSpec.invalid(
            "spec.predictor needs model (modelFormat + storage) or one framework of "
            + ", ".join(OLD_FORMAT_FRAMEWORKS)
        )
    key, params, path, schema_path = _storage(section, annotations)
    return ModelSpec(
        name=name, namespace=namespace, owner=OWNER_ISVC, model_type=model_type, model_type_version=version,
        runtime=str(runtime or ""), protocol=str(section.get("protocolVersion") or ""),
        storage_key=key, storage_params=params, path=path, schema_path=schema_path,
    )

"""Model-spec logic shared by the controller and `modelmesh local`.

Parses Predictor / InferenceService specs into a `ModelSpec`, derives the mesh's ModelInfo
(type label, key JSON) and concrete model id, and maps the mesh's vmodel status onto the
CR status state machine. Pure functions over plain dicts: no Kubernetes client here.
"""

from modelmesh.modelspec.model_info import concrete_model_id, model_info_key, type_label
from modelmesh.modelspec.spec import InvalidSpec, ModelSpec, parse_inference_service, parse_predictor
from modelmesh.modelspec.status import (
    FailureInfo,
    FailureReason,
    ModelState,
    ModelStatus,
    RuntimeCatalog,
    TransitionStatus,
    status_from_vmodel,
)
from modelmesh.modelspec.storage_uri import parse_storage_uri

__all__ = [
    "FailureInfo", "FailureReason", "InvalidSpec", "ModelSpec", "ModelState", "ModelStatus", "RuntimeCatalog",
    "TransitionStatus", "concrete_model_id", "model_info_key", "parse_inference_service", "parse_predictor",
    "parse_storage_uri", "status_from_vmodel", "type_label",
]

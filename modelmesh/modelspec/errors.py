"""The one error a model spec can raise: invalid, with the status reason it maps to."""

from __future__ import annotations


class InvalidSpec(ValueError):
    """A spec the controller cannot register; `reason` is the CR's lastFailureInfo.reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @classmethod
    def invalid(cls, message: str) -> "InvalidSpec":
        return cls("InvalidPredictorSpec", message)

    @classmethod
    def storage_missing(cls) -> "InvalidSpec":
        return cls("ModelLoadFailed", "Predictor Storage field missing")

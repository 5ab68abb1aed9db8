"""What the generic ModelRuntime servicer needs from a model server, whichever it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

V2_METHODS: dict[str, tuple[int, ...]] = {
    # id injection path [1] = field 1 (model_name / name) of the request.
    "inference.GRPCInferenceService/ModelInfer": (1,),
    "inference.GRPCInferenceService/ModelMetadata": (1,),
}


class ModelServerDriver(Protocol):
    display_name: str  # "Triton", for messages
    layout_root: str  # where lay_out puts models (<ROOT_MODEL_DIR>/_<server>_models)
    method_infos: Mapping[str, tuple[int, ...]]
    reports_size: bool  # True: the server measures a model after load (modelSize asks it)

    async def start(self) -> None:
        """Open clients; must not wait for the server (runtimeStatus reports STARTING)."""

    async def close(self) -> None: ...

    async def is_ready(self) -> bool: ...

    async def version(self) -> str:
        """The server's version, "" when it does not say."""

    def lay_out(self, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
        """Blocking file work (run in a thread): returns what `load` gets."""

    async def load(self, model_id: str, laid_out: str) -> None:
        """Return once the model serves; raise AdapterError with the server's reason."""

    async def unload(self, model_id: str) -> None:
        """Unload; a model the server does not know is not an error."""

    async def unload_all(self) -> None:
        """Unload everything the server has loaded (start-up purge)."""

    async def model_size(self, model_id: str) -> int | None:
        """Memory the server reports for a loaded model, None when it cannot say."""

"""MLServer layout: `<root>/<id>/model-settings.json` + links to the pulled files.

- A native dir (holding model-settings.json) keeps its settings with `name` = model id,
  `parameters.uri` re-rooted into the target dir, schema inputs/outputs injected.
- Otherwise the file or dir is linked in and model-settings.json generated with the
  implementation for the model type and `parameters.uri` pointing at the link.

Once the server has loaded a model its settings file is renamed to `.model-settings.json`
(`hide_settings`): MLServer's RepositoryModelLoad globs and parses every
`**/model-settings.json` under its models dir (about 1-2 ms each) to find the one model it
loads, so with N models loaded every load cost N parses on the server's event loop (92 ms at
100 loaded vs 4 ms with an empty dir, perf/miss_bench.py). A loaded model needs its settings
file no more (the server keeps them in memory; its files stay linked where `parameters.uri`
points), so only the models being loaded are scanned.
"""

from __future__ import annotations

import json
import os
from typing import Any

from modelmesh.config.json_object import parse_json_object
from modelmesh.adapters.errors import InvalidModel
from modelmesh.adapters.files import confined, fresh_dir, require_exists, symlink, write_atomic
from modelmesh.adapters.schema import ModelSchema, load_schema

SETTINGS_FILE = "model-settings.json"
LOADED_SETTINGS_FILE = ".model-settings.json"  # out of MLServer's repository scan
IMPLEMENTATIONS = {
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
    "lightgbm": "mlserver_lightgbm.LightGBMModel",
    "mllib": "mlserver_mllib.MLlibModel",
}


def _inject_schema(settings: dict[str, Any], schema: ModelSchema | None) -> None:
    if schema is None:
        return
    if schema.inputs is not None:
        settings["inputs"] = [t.to_json() for t in schema.inputs]
    if schema.outputs is not None:
        settings["outputs"] = [t.to_json() for t in schema.outputs]


def rewrite_settings(text: str, model_id: str, target: str, schema: ModelSchema | None) -> dict[str, Any]:
    settings = parse_json_object(text, SETTINGS_FILE, InvalidModel, empty_ok=False)
    settings["name"] = model_id
    params = settings.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("uri"), str):
        # Relative URIs are relative to the settings file, which now lives in `target`.
        params["uri"] = confined(target, params["uri"].lstrip("/"))
    _inject_schema(settings, schema)
    return settings


def generate_settings(model_id: str, model_type: str, uri: str, schema: ModelSchema | None) -> dict[str, Any]:
    settings: dict[str, Any] = {"name": model_id}
    if model_type in IMPLEMENTATIONS:
        settings["implementation"] = IMPLEMENTATIONS[model_type]
    settings["parameters"] = {"uri": uri}
    _inject_schema(settings, schema)
    return settings


def _write(target: str, settings: dict[str, Any]) -> None:
    write_atomic(os.path.join(target, SETTINGS_FILE), json.dumps(settings, indent=2))


def lay_out(root: str, model_id: str, model_type: str, model_path: str, schema_path: str | None) -> str:
    require_exists(model_path)
    schema = load_schema(schema_path) if schema_path else None
    target = fresh_dir(confined(root, model_id))
    if os.path.isdir(model_path) and os.path.isfile(os.path.join(model_path, SETTINGS_FILE)):
        for name in sorted(os.listdir(model_path)):
            source = os.path.join(model_path, name)
            if name == SETTINGS_FILE:
                with open(source, encoding="utf-8", errors="replace") as f:
                    _write(target, rewrite_settings(f.read(), model_id, target, schema))
            else:
                symlink(source, confined(target, name))
        return target
    name = os.path.basename(model_path.rstrip("/"))
    if name == SETTINGS_FILE:
        raise InvalidModel(f"the model path points at {SETTINGS_FILE} itself; point it at the model's directory")
    link = confined(target, name)
    symlink(model_path, link)
    _write(target, generate_settings(model_id, model_type, link, schema))
    return target


def hide_settings(target: str) -> None:
    """The model in `target` is loaded: take its settings out of the server's repository scan."""
    os.replace(os.path.join(target, SETTINGS_FILE), os.path.join(target, LOADED_SETTINGS_FILE))


def hidden_model_ids(root: str) -> list[str]:
    """Models laid out under `root` whose settings were hidden after a load: the server may
    hold them though its repository index does not list them."""
    if not os.path.isdir(root):
        return []
    return sorted(e.name for e in os.scandir(root)
                  if e.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(e.path, LOADED_SETTINGS_FILE)))

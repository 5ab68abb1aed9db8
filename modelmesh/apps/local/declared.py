"""What the config dir declares: the YAML users apply to a cluster, read file by file.

Each file holds one or more documents. InferenceService (ModelMesh mode, new and old
predictor formats) and Predictor declare a model, parsed by the same model-spec code the
controller uses; the model name is the vmodel name. A document that cannot be used is a
per-file error that never stops the other models.

Local storage: `storageUri: file:///abs/path`, or a path relative to the config dir (no
scheme), is served from this machine through the puller's `pvc` type: the model's parent
directory is linked as a volume under `<state>/mounts/` (the puller links the model in and
copies nothing, and keeps every path inside that directory).
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelmesh.apps.local.runtimes import BUILTIN as BUILTIN_RUNTIMES
from modelmesh.modelspec.model_info import concrete_model_id, type_label
from modelmesh.modelspec.spec import (
    DEPLOYMENT_MODE_ANNOTATION,
    OLD_FORMAT_FRAMEWORKS,
    InvalidSpec,
    ModelSpec,
    parse_inference_service,
    parse_predictor,
)

YAML_SUFFIXES = (".yaml", ".yml", ".json")
MODEL_KINDS = ("InferenceService", "Predictor")
RUNTIME_KINDS = ("ServingRuntime", "ClusterServingRuntime")


@dataclass(frozen=True)
class DeclaredModel:
    spec: ModelSpec
    model_id: str
    label: str
    file: str  # absolute path of the declaring file


@dataclass(frozen=True)
class InvalidModel:
    """A model document that names a model but cannot be registered (its status is InvalidSpec)."""

    name: str
    reason: str
    message: str
    file: str


@dataclass
class FileResult:
    path: str
    models: list[DeclaredModel] = field(default_factory=list)
    invalid: list[InvalidModel] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # problems not tied to one model name
    notes: list[str] = field(default_factory=list)  # documents read but not acted on
    runtimes: list[dict[str, Any]] = field(default_factory=list)  # custom runtime documents


class LocalStorage:
    """Maps local model paths onto `pvc` volumes linked under `mounts_root`."""

    def __init__(self, mounts_root: Path) -> None:
        self.mounts_root = mounts_root

    def volume_for(self, directory: Path) -> str:
        """The volume name of `directory`, linking it in on first use."""
        directory = Path(os.path.realpath(directory))
        name = "local-" + hashlib.sha256(str(directory).encode()).hexdigest()[:12]
        link = self.mounts_root / name
        if not link.is_symlink() or os.readlink(link) != str(directory):
            self.mounts_root.mkdir(parents=True, exist_ok=True)
            tmp = self.mounts_root / f".{name}.tmp"
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(directory)
            tmp.replace(link)
        return name

    def rewrite(self, location: str, base_dir: Path) -> str | None:
        """`pvc://<volume>/<name>` for a local location, None for a remote one."""
        if location.startswith("file://"):
            path = Path(location[len("file://"):])
            if not path.is_absolute():
                raise InvalidSpec.invalid(f"file:// storageUri needs an absolute path: {location}")
        elif "://" in location:
            return None
        else:
            path = Path(location)
            if not path.is_absolute():
                path = base_dir / path
        path = Path(os.path.normpath(path))
        if path.parent == path:
            raise InvalidSpec.invalid(f"storage path {location!r} names no model")
        return f"pvc://{self.volume_for(path.parent)}/{path.name}"


def _predictor_section(doc: dict[str, Any]) -> dict[str, Any] | None:
    predictor = (doc.get("spec") or {}).get("predictor")
    if not isinstance(predictor, dict):
        return None
    if isinstance(predictor.get("model"), dict):
        return predictor["model"]
    for fw in OLD_FORMAT_FRAMEWORKS:
        if isinstance(predictor.get(fw), dict):
            return predictor[fw]
    return None


def _localize(doc: dict[str, Any], storage: LocalStorage, base_dir: Path) -> dict[str, Any]:
    """A copy of the document with local model locations turned into `pvc://` ones."""
    doc = copy.deepcopy(doc)
    if doc.get("kind") == "InferenceService":
        section = _predictor_section(doc)
        if section is None:
            return doc
        uri = section.get("storageUri")
        st = section.get("storage") if isinstance(section.get("storage"), dict) else None
        if isinstance(uri, str) and uri:
            new = storage.rewrite(uri, base_dir)
            if new:
                section["storageUri"] = new
        elif st and st.get("path") and not st.get("key") and not st.get("parameters"):
            new = storage.rewrite(str(st["path"]), base_dir)
            if new:
                section["storageUri"] = new
                del st["path"]
        return doc
    spec = doc.get("spec") or {}
    st = spec.get("storage") if isinstance(spec.get("storage"), dict) else None
    if st and st.get("path") and not st.get("key") and not st.get("parameters") and not st.get("s3"):
        new = storage.rewrite(str(st["path"]), base_dir)
        if new:
            volume, _, name = new[len("pvc://"):].partition("/")
            st["parameters"] = {"type": "pvc", "name": volume}
            st["path"] = name
    return doc


def _documents(path: Path) -> Iterator[Any]:
    with open(path) as f:
        yield from yaml.safe_load_all(f)


def read_file(path: Path, storage: LocalStorage, base_dir: Path) -> FileResult:
    result = FileResult(str(path))
    try:
        docs = [d for d in _documents(path) if d is not None]
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        result.errors.append(f"invalid YAML{at}: {problem}")
        return result
    except (OSError, UnicodeDecodeError) as e:
        result.errors.append(f"cannot read: {e}")
        return result
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict):
            result.errors.append(f"document {i}: expected a mapping with apiVersion and kind")
            continue
        kind = doc.get("kind")
        name = ((doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None) or ""
        if kind in RUNTIME_KINDS:
            if name in BUILTIN_RUNTIMES:
                result.notes.append(f"{kind} {name}: built into local mode; this document is not applied")
            else:
                result.runtimes.append(doc)
            continue
        if kind not in MODEL_KINDS:
            result.errors.append(f"document {i}: kind {kind!r} is not used in local mode "
                                 f"(expected {', '.join(MODEL_KINDS + RUNTIME_KINDS)})")
            continue
        if not name:
            result.errors.append(f"document {i}: {kind} has no metadata.name")
            continue
        mode = ((doc.get("metadata") or {}).get("annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION, "")
        if kind == "InferenceService" and mode and mode.lower() != "modelmesh":
            result.notes.append(f"InferenceService {name}: deploymentMode {mode} is not served by ModelMesh")
            continue
        try:
            local = _localize(doc, storage, base_dir)
            spec = parse_predictor(local) if kind == "Predictor" else parse_inference_service(local)
        except InvalidSpec as e:
            result.invalid.append(InvalidModel(name, e.reason, e.message, str(path)))
            continue
        result.models.append(DeclaredModel(spec, concrete_model_id(spec), type_label(spec), str(path)))
    return result


class ConfigDir:
    """The watched dir: `scan()` re-reads the files that changed since the last scan."""

    def __init__(self, path: Path, storage: LocalStorage) -> None:
        self.path = path
        self.storage = storage
        self._seen: dict[str, tuple[int, int]] = {}
        self.files: dict[str, FileResult] = {}

    def _candidates(self) -> dict[str, tuple[int, int]]:
        out = {}
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return out
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(YAML_SUFFIXES):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if entry.is_file():
                out[os.path.abspath(entry.path)] = (st.st_mtime_ns, st.st_size)
        return out

    def scan(self) -> bool:
        """Re-read changed files, drop removed ones; True when anything changed."""
        now = self._candidates()
        changed = False
        for path in list(self.files):
            if path not in now:
                del self.files[path]
                self._seen.pop(path, None)
                changed = True
        for path, stamp in sorted(now.items()):
            if self._seen.get(path) != stamp:
                self._seen[path] = stamp
                self.files[path] = read_file(Path(path), self.storage, self.path)
                changed = True
        return changed

    def models(self) -> tuple[dict[str, DeclaredModel], list[InvalidModel], dict[str, list[str]]]:
        """(valid models by name, invalid ones, errors by file). A name declared twice is
        an error of the file seen later (at start, files in name order), so adding a file
        never takes a model away from the file that already serves it."""
        models: dict[str, DeclaredModel] = {}
        invalid: list[InvalidModel] = []
        errors: dict[str, list[str]] = {}
        for path, result in self.files.items():
            if result.errors:
                errors[path] = list(result.errors)
            for m in result.models:
                if m.spec.name in models or any(i.name == m.spec.name for i in invalid):
                    errors.setdefault(path, []).append(f"model {m.spec.name!r} is already declared in "
                                                       f"{models[m.spec.name].file if m.spec.name in models else 'another file'}")
                    continue
                models[m.spec.name] = m
            for inv in result.invalid:
                if inv.name in models:
                    errors.setdefault(path, []).append(f"model {inv.name!r} is already declared in "
                                                       f"{models[inv.name].file}")
                    continue
                invalid.append(inv)
        return models, invalid, errors

    def runtime_documents(self) -> list[tuple[str, dict[str, Any]]]:
        return [(path, doc) for path, r in self.files.items() for doc in r.runtimes]

    def add_error(self, path: str, message: str) -> None:
        self.files[path].errors.append(message)

    def notes(self) -> dict[str, list[str]]:
        return {p: list(r.notes) for p, r in sorted(self.files.items()) if r.notes}

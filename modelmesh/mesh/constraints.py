"""Type constraints: which instances may hold a model of a given type.

The controller writes `type_constraints` into tc-config (MM_TYPE_CONSTRAINTS_PATH), e.g.
`{"mt:sklearn": {"required": ["mt:sklearn"]}, "rt:mlserver-1.x": {"required": [...]},
"_default": {"required": ["_no_runtime"]}}`. An instance qualifies when its labels contain
every required label; preferred labels only rank qualifying instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelmesh.config.json_object import parse_json_object

DEFAULT_KEY = "_default"


def inline_or_file(inline: str, path: str) -> str | bytes:
    """A JSON setting given inline (MM_X) or as a file (MM_X_PATH; a missing file = empty,
    as a not-yet-written ConfigMap key is)."""
    if inline:
        return inline
    if path:
        p = Path(path)
        return p.read_bytes() if p.exists() else ""
    return ""
# The controller recognises this phrasing (NoSupportingRuntime / RuntimeNotRecognized reasons).
NO_INSTANCE_MESSAGE = "There are no running instances that meet the label requirements of type {type}: [{labels}]"


@dataclass(frozen=True, slots=True)
class Constraint:
    required: frozenset[str] = frozenset()
    preferred: frozenset[str] = frozenset()


class TypeConstraints:
    def __init__(self, table: dict[str, Constraint] | None = None) -> None:
        self._table = table or {}

    @classmethod
    def parse(cls, raw: bytes | str) -> "TypeConstraints":
        data = parse_json_object(raw, "type constraints", shape=" of type -> {required, preferred}")
        if not data:
            return cls()
        table = {}
        for type_, spec in data.items():
            if not isinstance(spec, dict):
                raise ValueError(f"type constraint for {type_!r} must be an object")
            table[type_] = Constraint(frozenset(spec.get("required") or ()), frozenset(spec.get("preferred") or ()))
        return cls(table)

    @classmethod
    def load(cls, inline: str = "", path: str = "") -> "TypeConstraints":
        return cls.parse(inline_or_file(inline, path))

    def replace_with(self, other: "TypeConstraints") -> None:
        """Take another's table (tc-config reloaded): everyone holding this object sees it."""
        self._table = other._table

    def types(self) -> list[str]:
        return sorted(self._table)

    @property
    def configured(self) -> bool:
        return bool(self._table)

    def for_type(self, model_type: str) -> Constraint | None:
        """The constraint of a type, `_default` if it has none; None = type not accepted."""
        if not self._table:
            return Constraint()
        c = self._table.get(model_type)
        if c is None:
            c = self._table.get(DEFAULT_KEY)
        return c

    def accepts(self, model_type: str, labels: frozenset[str] | set[str]) -> bool:
        c = self.for_type(model_type)
        return c is not None and c.required <= labels

    def preference(self, model_type: str, labels: frozenset[str] | set[str]) -> int:
        c = self.for_type(model_type)
        return len(c.preferred & labels) if c else 0

    def no_instance_message(self, model_type: str) -> str:
        c = self.for_type(model_type) or Constraint()
        return NO_INSTANCE_MESSAGE.format(type=model_type, labels=", ".join(sorted(c.required)))

"""A small typed-settings layer: frozen dataclasses whose fields name their env var.

Each mode declares its settings once (env name, default, help); the CLI derives flags and
`--help` from the same declaration, and `load_settings` validates everything up front so a
bad value is one clear line at start-up instead of a stack trace later.
Precedence: flag > env var > default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING
# Marker for settings with no default that must be given.
REQUIRED: Any = object()


class SettingsError(ValueError):
    """An invalid or missing setting; the message is one line naming the variable."""


@dataclasses.dataclass(frozen=True)
class SettingMeta:
    env: str
    help: str
    parse: Callable[[str], Any] | None = None
    check: Callable[[Any], str | None] | None = None
    secret: bool = False


def setting(
    env: str,
    default: Any = _MISSING,
    help: str = "",
    *,
    parse: Callable[[str], Any] | None = None,
    check: Callable[[Any], str | None] | None = None,
    secret: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare a settings field bound to env var `env`.

    `parse` turns the raw string into the field's value (type-derived when omitted);
    `check` returns an error message for a parsed value that is out of range.
    """
    meta = {"setting": SettingMeta(env=env, help=help, parse=parse, check=check, secret=secret)}
    # A secret stays out of the settings' repr (and so out of any log line that shows them).
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta, repr=not secret)
    if default is _MISSING:
        default = REQUIRED
    return dataclasses.field(default=default, metadata=meta, repr=not secret)


# --- value parsers -------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def parse_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None


def parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "expected a port number 0-65535"


def positive(value: float) -> str | None:
    return None if value > 0 else "expected a value > 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "expected a value >= 0"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}"

    return check


def _parser_for(tp: Any) -> Callable[[str], Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _parser_for(args[0])
        return lambda raw: None if raw == "" else inner(raw)
    if tp is bool:
        return parse_bool
    if tp is int:
        return parse_int
    if tp is float:
        return parse_float
    if tp is str:
        return lambda raw: raw
    if origin is tuple:
        return parse_csv
    raise TypeError(f"no parser for settings type {tp!r}")


def fields_of(cls: type) -> list[tuple[dataclasses.Field, SettingMeta, Callable[[str], Any]]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        out.append((f, meta, meta.parse or _parser_for(hints[f.name])))
    return out


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def load_settings(cls: type[T], env: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> T:
    """Build `cls` from env vars and string overrides (flag values keyed by field name).

    Raises SettingsError with a one-line message for the first bad or missing value.
    """
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for f, meta, parse in fields_of(cls):
        source, raw = None, None
        if overrides.get(f.name) is not None:
            source, raw = flag_name(f.name), overrides[f.name]
        elif meta.env in env:
            source, raw = meta.env, env[meta.env]
        if raw is None:
            if f.default is REQUIRED:
                raise SettingsError(f"{meta.env} is required ({meta.help or f.name})")
            continue
        shown = "***" if meta.secret else raw
        try:
            value = parse(raw)
        except ValueError as e:
            raise SettingsError(f"invalid {source}={shown!r}: {e}") from None
        if meta.check is not None and value is not None:
            problem = meta.check(value)
            if problem:
                raise SettingsError(f"invalid {source}={shown!r}: {problem}")
        values[f.name] = value
    settings = cls(**values)
    # Checks that span several settings or read the files they name (TLS material) are
    # the class's own: `validate()` raises SettingsError naming the setting.
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate()
    return settings


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(flag, env, default, help) rows for `--help` and docs."""
    rows = []
    for f, meta, _ in fields_of(cls):
        if f.default is REQUIRED:
            default = "(required)"
        elif f.default is not _MISSING:
            default = "" if f.default is None else repr(f.default) if isinstance(f.default, str) else str(f.default)
        else:
            default = "(computed)"
        rows.append((flag_name(f.name), meta.env, default, meta.help))
    return rows

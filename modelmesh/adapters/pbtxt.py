"""Protobuf text format (Triton's config.pbtxt) as a schema-less, order-keeping tree.

Triton's model_config.proto is large and changes with every release; rewriting a config
only needs to drop `name` and swap `input`/`output`, so the file is parsed into
`Message` = list of (field, value) and printed back with every other field untouched.
A value is a scalar token kept verbatim (`"abc"`, `-1`, `TYPE_FP32`, `true`), a nested
`Message`, or a `list` of either (`dims: [ 1, 2 ]`, `input [ {...}, {...} ]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

Value = Union[str, "Message", list]


class PbtxtError(ValueError):
    pass


@dataclass
class Message:
    fields: list[tuple[str, Value]] = field(default_factory=list)

    def get(self, name: str) -> list[Value]:
        """All values of a field, repeated entries and `[...]` lists flattened."""
        out: list[Value] = []
        for k, v in self.fields:
            if k == name:
                out.extend(v if isinstance(v, list) else [v])
        return out

    def first(self, name: str) -> Value | None:
        values = self.get(name)
        return values[0] if values else None

    def remove(self, name: str) -> None:
        self.fields = [(k, v) for k, v in self.fields if k != name]

    def replace(self, name: str, values: list[Value]) -> None:
        """Put `values` as repeated `name` entries where the field first appeared (or at the end)."""
        idx = next((i for i, (k, _) in enumerate(self.fields) if k == name), len(self.fields))
        rest = [(k, v) for k, v in self.fields if k != name]
        idx = min(idx, len(rest))
        self.fields = rest[:idx] + [(name, v) for v in values] + rest[idx:]


_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<punct>[{}\[\]<>:,;])
    |(?P<word>[A-Za-z0-9_.+\-/]+)""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise PbtxtError(f"unexpected character {text[pos]!r} on line {line}")
        pos = m.end()
        tok = m.group("str") or m.group("punct") or m.group("word")
        if tok:
            out.append(tok)
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise PbtxtError(f"unexpected end of input (expected {expected or 'a value'})")
        if expected is not None and tok != expected:
            raise PbtxtError(f"expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def message(self, close: str | None) -> Message:
        msg = Message()
        while True:
            tok = self.peek()
            if tok is None:
                if close is not None:
                    raise PbtxtError(f"missing {close!r}")
                return msg
            if tok == close:
                self.i += 1
                return msg
            if tok in (",", ";"):
                self.i += 1
                continue
            name = self.take()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*|\[[^\]]+\]", name):
                raise PbtxtError(f"expected a field name, got {name!r}")
            colon = self.peek() == ":"
            if colon:
                self.i += 1
            msg.fields.append((name, self.value(scalar_ok=colon)))

    def value(self, scalar_ok: bool) -> Value:
        tok = self.peek()
        if tok in ("{", "<"):
            self.i += 1
            return self.message("}" if tok == "{" else ">")
        if tok == "[":
            self.i += 1
            items: list[Value] = []
            while self.peek() != "]":
                items.append(self.value(scalar_ok=True))
                if self.peek() == ",":
                    self.i += 1
            self.i += 1
            return items
        if not scalar_ok:
            raise PbtxtError(f"expected ':' or '{{' after field name, got {tok!r}")
        tok = self.take()
        if tok in "{}[]<>:,;":
            raise PbtxtError(f"expected a value, got {tok!r}")
        # Adjacent string literals concatenate; keep them as one verbatim token.
        while tok[0] in "\"'" and (self.peek() or " ")[0] in "\"'":
            tok += " " + self.take()
        return tok


def parse(text: str) -> Message:
    return _Parser(text).message(close=None)


def _format_value(v: Value, indent: str) -> str:
    if isinstance(v, Message):
        inner = _format_fields(v, indent + "  ")
        return "{\n" + inner + indent + "}" if inner else "{}"
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v):
            return "[ " + ", ".join(v) + " ]" if v else "[]"
        inner = ",\n".join(indent + "  " + _format_value(x, indent + "  ") for x in v)
        return "[\n" + inner + "\n" + indent + "]"
    return v


def _format_fields(msg: Message, indent: str) -> str:
    lines = []
    for name, v in msg.fields:
        sep = ": " if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)) else " "
        lines.append(f"{indent}{name}{sep}{_format_value(v, indent)}\n")
    return "".join(lines)


def format(msg: Message) -> str:  # noqa: A001 - mirrors text_format naming
    return _format_fields(msg, "")


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(token: str) -> str:
    if token and token[0] in "\"'":
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    return token

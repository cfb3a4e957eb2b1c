"""What a method declaration is: its name, typed parameters, result shape, errors and CLI command.

The declarations are data, so the server's dispatch, the client's methods, ``rpc.methods``, the
CLI and the README's reference can all be checked against one source instead of drifting apart.
This module imports nothing heavy: the CLI loads it on every start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mindood.rpc.errors import InvalidParamsError

Kind = Literal["string", "integer", "boolean", "number", "map", "array", "binary", "any"]

_CHECKS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "number": (int, float),
    "map": (dict,),
    "array": (list, tuple),
    "binary": (bytes, bytearray, memoryview),
}

_SAYS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
    "map": "a map",
    "array": "an array",
    "binary": "binary",
}


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind
    doc: str
    required: bool = True

    def accepts(self, value: object) -> bool:
        if self.kind == "any":
            return True
        if isinstance(value, bool) and self.kind in ("integer", "number"):
            return False
        return isinstance(value, _CHECKS[self.kind])

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "required": self.required, "doc": self.doc}


def req(name: str, kind: Kind, doc: str) -> Param:
    return Param(name, kind, doc, required=True)


def opt(name: str, kind: Kind, doc: str) -> Param:
    return Param(name, kind, doc, required=False)


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC method. ``cli`` is the command that reaches it (``None``: library use only)."""

    name: str
    doc: str
    params: tuple[Param, ...]
    result: str
    cli: str | None
    errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a parameter is declared twice")

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.params)

    def check(self, params: Mapping[str, Any]) -> None:
        """Reject unknown, missing and mistyped parameters before any handler runs."""
        declared = {p.name: p for p in self.params}
        for name in params:
            if name not in declared:
                takes = ", ".join(p.name for p in self.params) or "no parameters"
                raise InvalidParamsError(
                    f"unknown parameter {str(name)[:64]!r} ({self.name} takes {takes})"
                )
        for param in self.params:
            value = params.get(param.name)
            if value is None:
                if param.required:
                    raise InvalidParamsError(f"missing parameter {param.name!r}")
                continue
            if not param.accepts(value):
                raise InvalidParamsError(f"parameter {param.name!r} must be {_SAYS[param.kind]}")

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "doc": self.doc,
            "params": [p.to_wire() for p in self.params],
            "result": self.result,
            "errors": list(self.errors),
            "cli": self.cli,
        }


def table(*families: Iterable[Method]) -> dict[str, Method]:
    """The name -> method table; a name declared twice is a bug found at import."""
    methods: dict[str, Method] = {}
    for family in families:
        for method in family:
            if method.name in methods:
                raise ValueError(f"method {method.name} is declared twice")
            methods[method.name] = method
    return dict(sorted(methods.items()))


__all__ = ["Kind", "Method", "Param", "opt", "req", "table"]

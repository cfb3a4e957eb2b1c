"""Typed access to an RPC request's named parameters; every complaint names the parameter.

``finish()`` rejects parameters the method does not know, so a misspelt optional parameter is an
error instead of a silently ignored default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from mindood.daemon.secrets import MIN_NEW_PASSWORD_CHARS
from mindood.errors import MindoodError
from mindood.rpc.errors import InvalidParamsError
from mindood.storefactory import check_component

if TYPE_CHECKING:
    from mindood.daemon.node import Node
    from mindood.rpc.connection import Connection

#: Every RPC method's handler: the node, the request's parameters, the caller's connection.
Handler: TypeAlias = "Callable[[Node, Params, Connection], Awaitable[Any]]"

MAX_PASSWORD_CHARS = 4096
MAX_TEXT_CHARS = 64 * 1024
MAX_URI_CHARS = 1024 * 1024

_MISSING: Any = object()


class UndeclaredParamError(RuntimeError):
    """A handler read a parameter its schema declaration does not list (a bug, not bad input)."""


class Params:
    def __init__(self, raw: dict[str, Any], declared: frozenset[str] | None = None) -> None:
        self._raw = raw
        self._declared = declared
        self._seen: set[str] = set()

    def _take(self, name: str, required: bool) -> Any:
        if self._declared is not None and name not in self._declared:
            raise UndeclaredParamError(f"parameter {name!r} is not in the method's declaration")
        self._seen.add(name)
        value = self._raw.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise InvalidParamsError(f"missing parameter {name!r}")
            return None
        return value

    def text(self, name: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
        value = self.opt_text(name, max_chars=max_chars, required=True)
        assert value is not None
        return value

    def opt_text(
        self, name: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = False
    ) -> str | None:
        value = self._take(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidParamsError(f"parameter {name!r} must be a string")
        if not value:
            raise InvalidParamsError(f"parameter {name!r} must not be empty")
        if len(value) > max_chars:
            raise InvalidParamsError(f"parameter {name!r} is longer than {max_chars} characters")
        return value

    def password(self, name: str) -> str:
        return self.text(name, max_chars=MAX_PASSWORD_CHARS)

    def opt_password(self, name: str) -> str | None:
        return self.opt_text(name, max_chars=MAX_PASSWORD_CHARS)

    def new_password(self, name: str) -> str:
        """A password being chosen: at least ``MIN_NEW_PASSWORD_CHARS`` characters."""
        value = self.opt_new_password(name)
        if value is None:
            raise InvalidParamsError(f"missing parameter {name!r}")
        return value

    def opt_new_password(self, name: str) -> str | None:
        value = self.opt_password(name)
        if value is not None and len(value) < MIN_NEW_PASSWORD_CHARS:
            raise InvalidParamsError(
                f"parameter {name!r}: a new password needs at least {MIN_NEW_PASSWORD_CHARS}"
                " characters"
            )
        return value

    def name(self, name: str, what: str) -> str:
        """A tenant id or database name (a safe path component)."""
        value = self.text(name, max_chars=128)
        try:
            return check_component(value, what)
        except MindoodError as exc:
            raise InvalidParamsError(f"parameter {name!r}: {exc}") from None

    def tenant(self) -> str:
        return self.name("tenant", "tenant id")

    def db(self) -> str:
        return self.name("db", "database name")

    def opt_int(self, name: str, *, low: int, high: int, default: int) -> int:
        value = self._take(name, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParamsError(f"parameter {name!r} must be an integer")
        if not low <= value <= high:
            raise InvalidParamsError(f"parameter {name!r} must be between {low} and {high}")
        return value

    def opt_bool(self, name: str, default: bool) -> bool:
        value = self._take(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidParamsError(f"parameter {name!r} must be true or false")
        return value

    def opt_map(self, name: str) -> dict[str, Any] | None:
        value = self._take(name, False)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidParamsError(f"parameter {name!r} must be a map")
        return value

    def opt_list(self, name: str, *, max_items: int) -> list[Any] | None:
        value = self._take(name, False)
        if value is None:
            return None
        if not isinstance(value, list):
            raise InvalidParamsError(f"parameter {name!r} must be an array")
        if len(value) > max_items:
            raise InvalidParamsError(f"parameter {name!r} has more than {max_items} items")
        return value

    def array(self, name: str, *, max_items: int) -> list[Any]:
        self._take(name, True)
        value = self.opt_list(name, max_items=max_items)
        assert value is not None
        return value

    def binary(self, name: str, *, max_bytes: int) -> bytes:
        value = self._take(name, True)
        if not isinstance(value, bytes):
            raise InvalidParamsError(f"parameter {name!r} must be binary")
        if len(value) > max_bytes:
            raise InvalidParamsError(f"parameter {name!r} is larger than {max_bytes} bytes")
        return value

    def raw(self, name: str) -> Any:
        """The value as sent (None if absent); the caller validates it."""
        return self._take(name, False)

    def finish(self) -> None:
        unknown = sorted(set(self._raw) - self._seen)
        if unknown:
            raise InvalidParamsError(f"unknown parameter {unknown[0]!r}")


__all__ = ["Handler", "Params", "UndeclaredParamError"]

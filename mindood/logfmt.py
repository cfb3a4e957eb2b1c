"""Log lines that show their structured fields.

Code logs with ``extra={"peer": ..., "reason": ...}`` so that a journal or a log shipper can
index the fields; a plain ``logging.Formatter`` would drop them from the text. This one appends
them as ``key=value`` (values quoted when they contain spaces) after the message.
"""

from __future__ import annotations

import logging

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_MAX_VALUE = 300


def _render(value: object) -> str:
    text = str(value).replace("\n", "\\n")
    if len(text) > _MAX_VALUE:
        text = text[:_MAX_VALUE] + "..."
    return f'"{text}"' if (" " in text or not text) else text


class StructuredFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        if not fields:
            return line
        first, newline, rest = line.partition("\n")  # keep tracebacks after the fields
        rendered = " ".join(f"{key}={_render(value)}" for key, value in sorted(fields.items()))
        return f"{first} {rendered}{newline}{rest}"


def configure(
    level: str | int, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s"
) -> None:
    """Root logging to stderr with structured fields (the daemon and the CLI call this)."""
    handler = logging.StreamHandler()
    handler.setFormatter(StructuredFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])

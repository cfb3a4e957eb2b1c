"""Structured log fields reach the text of a log line."""

from __future__ import annotations

import logging

from mindood.logfmt import StructuredFormatter


def _line(**extra: object) -> str:
    record = logging.LogRecord("mindood.x", logging.INFO, "f.py", 1, "peer unreachable", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return StructuredFormatter("%(levelname)s %(name)s: %(message)s").format(record)


def test_extra_fields_are_appended_as_key_value() -> None:
    line = _line(peer="127.0.0.1:7890", reason="this key is not granted")
    assert (
        line
        == 'INFO mindood.x: peer unreachable peer=127.0.0.1:7890 reason="this key is not granted"'
    )


def test_plain_records_are_unchanged_and_long_values_cut() -> None:
    assert _line() == "INFO mindood.x: peer unreachable"
    assert len(_line(blob="x" * 10_000)) < 400

"""The README's RPC reference, rendered from the schema (a test keeps the README in step).

``python -m mindood.rpc.schema.reference README.md`` rewrites the block between the markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mindood.rpc.schema import SCHEMA
from mindood.rpc.schema.model import Method

BEGIN = "<!-- rpc-reference: generated from mindood/rpc/schema; do not edit -->"
END = "<!-- /rpc-reference -->"


def _params(method: Method) -> str:
    if not method.params:
        return ""
    return ", ".join(p.name if p.required else f"[{p.name}]" for p in method.params)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    lines = [
        BEGIN,
        "| method | parameters ([optional]) | what it does | CLI |",
        "|---|---|---|---|",
    ]
    for method in SCHEMA.values():
        cli = f"`mindood {method.cli}`" if method.cli else ""
        lines.append(
            f"| `{method.name}` | {_cell(_params(method))} | {_cell(method.doc)} | {cli} |"
        )
    lines.append(END)
    return "\n".join(lines)


def replace_block(text: str) -> str:
    """``text`` with the generated block in place of the one between the markers."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + markdown() + text[end:]


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    path.write_text(replace_block(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

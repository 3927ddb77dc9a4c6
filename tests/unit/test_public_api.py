"""The package's public names resolve, and protocol/ stays pure (no asyncio, no nats)."""

from __future__ import annotations

import ast
from pathlib import Path

import cotal_tui.protocol as p

PROTOCOL_DIR = Path(p.__file__).parent


def test_every_exported_name_resolves() -> None:
    missing = [name for name in p.__all__ if not hasattr(p, name)]
    assert not missing
    assert len(set(p.__all__)) == len(p.__all__)


def test_protocol_imports_no_io() -> None:
    forbidden = ("asyncio", "nats", "textual", "socket", "subprocess")
    offenders = []
    for path in sorted(PROTOCOL_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert not offenders, f"protocol/ must stay pure; found imports: {offenders}"

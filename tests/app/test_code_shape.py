"""The shape the code keeps as it grows: no hall a newcomer gets lost in.

Every module in ``bot/`` stays under 450 lines and every function under 60, so each change
has an obvious home and each piece can be read in one sitting; ``bot/lavalink/`` knows
nothing of commands, queues or storage, and nothing but the glue module knows hikari.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[2] / "bot"
MODULES = sorted(BOT.rglob("*.py"))
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def _name(path: Path) -> str:
    return str(path.relative_to(BOT.parent))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_and_functions_stay_small(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_lavalink_client_knows_nothing_of_the_bot_around_it() -> None:
    for path in sorted((BOT / "lavalink").glob("*.py")):
        foreign = {
            name
            for name in _imports(path)
            if name.startswith(("bot.", "sqlalchemy", "lightbulb"))
            or (name.startswith("hikari") and path.name != "hikari_glue.py")
        }
        assert not foreign, f"{_name(path)} imports {sorted(foreign)}"

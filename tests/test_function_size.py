"""No function in ``framework/`` or ``plugins/`` runs over MAX_LINES lines, from its ``def`` to
its last line (docstring and comments included, decorators not): a longer one does more than
one step and is split into named steps."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("framework", "plugins") for p in (ROOT / folder).rglob("*.py"))
MAX_LINES = 60


def long_functions(path: Path) -> list[str]:
    """``name:line (N lines)`` of each function or method in ``path`` longer than MAX_LINES."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES:
                found.append(f"{node.name}:{node.lineno} ({lines} lines)")
    return found


def test_no_function_is_over_60_lines() -> None:
    found = [f"{path.relative_to(ROOT)}:{place}" for path in SOURCES for place in long_functions(path)]
    assert found == [], f"functions over {MAX_LINES} lines (split them into named steps): {found}"


def test_the_guard_sees_a_long_function(tmp_path) -> None:
    source = tmp_path / "long.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))
    source.write_text(f"def fits():\n{body}\n\ndef too_long():\n{body}    return x0\n")
    assert long_functions(source) == [f"too_long:{MAX_LINES + 3} ({MAX_LINES + 1} lines)"]

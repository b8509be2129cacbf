"""Dependencies point one way: tracker -> streams -> sinks -> config -> engine -> schemas.

Every import in the source tree (module level or inside a function, `import x` or `from x import
y`) is read with `ast`; a package may import only the packages below it. `rulebooks/` holds data
only. That the engine imports nothing but the standard library and schemas, even in a clean
interpreter, is tests/unit/test_contract_files.py's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Highest first: a package may import those after it in this list.
LAYERS = ("tracker", "streams", "sinks", "config", "engine", "schemas")
DATA_ONLY = ("rulebooks",)
OURS = (*LAYERS, *DATA_ONLY)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _violations(package: str) -> list[str]:
    allowed = set(LAYERS[LAYERS.index(package) :]) | {"rulebooks"}
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in OURS and top not in allowed:
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_down_only(package: str) -> None:
    assert _violations(package) == []


def test_the_rulebooks_folder_is_data() -> None:
    for path in (ROOT / "rulebooks").rglob("*.py"):
        assert [m for _, m in _imports(path) if m.split(".")[0] in OURS] == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # A row the checker must catch, so that a broken parser cannot pass vacuously.
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from tracker.cli import main\n", encoding="utf-8")
    assert _imports(bad) == [(2, "tracker.cli")]

"""The edges of the package hold: the import contract, printing only in cli/ui, rooms one can read.

The contract itself lives in pyproject.toml ([tool.importlinter]); ``make lint``
runs it too. Here it runs on the real tree, and on a copy with one deliberate
violation, to show it can fail.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "runflow_cli"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 400

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter is not installed (make install has it)"
)


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # this copy of runflow_cli, not the installed one
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(PACKAGE, root / "runflow_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_import_contract_holds() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("files/save.py", "from runflow_cli.batch import journal", "Layers"),
        ("api/answers.py", "import rich", "never imports typer, click or rich"),
        ("outputs/report.py", "from runflow_cli.sandbox import Sandbox", "imports the sandbox"),
        ("sandbox/links.py", "from runflow_cli.names import url_basename", "imports nothing"),
    ],
)
def test_a_deliberate_violation_breaks_the_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    root = _copy(tmp_path)
    path = root / "runflow_cli" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")

    done = _lint_imports(root)

    assert done.returncode != 0
    assert any(broken in row and "BROKEN" in row for row in done.stdout.splitlines()), done.stdout


def _terminal_writes(tree: ast.AST) -> list[str]:
    """What in a module writes to the terminal: print(), typer/click echo, a Rich
    ``.print()``, or anything touching ``sys.stdout``/``sys.stderr``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                found.append(f"print() at line {node.lineno}")
            elif isinstance(func, ast.Attribute) and func.attr in ("echo", "print"):
                found.append(f".{func.attr}() at line {node.lineno}")
        elif isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr"):
            found.append(f"{node.attr} at line {node.lineno}")
    return found


def test_only_cli_ui_prints() -> None:
    """Commands ask cli/ui to show things; the core and the commands never print themselves."""
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("cli/ui/", "sandbox/")):
            continue  # the display, and the sandbox's own server (it runs as a program too)
        found = _terminal_writes(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[relative] = found
    assert offenders == {}


def test_every_module_can_be_read_in_one_sitting() -> None:
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}

"""The package's shape (issue 12): one module per job, imports only downhill, no Streamlit in ``galaxy_core``.

The import graph is read from the source with ``ast`` (imports at any depth, inside functions too), so a cycle hidden
by a function-level import fails here as surely as one at the top; and every module is imported alone in a fresh
interpreter, as a user's ``from galaxy_core import X`` would, where a cycle would meet a half-initialised module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "galaxy_core"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
LAZY = {"cli"}
"""Modules allowed to import package modules inside functions: the command line imports each stage inside the
command that needs it, so that ``--help`` and ``summary`` do not wait for PyTorch."""
MAX_LINES = 500


def _imports(module: str) -> dict[str, bool]:
    """The package modules ``module`` imports, each mapped to whether the import is at module level (an import under
    ``if TYPE_CHECKING:`` is for annotations only and does not count)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: dict[str, bool] = {}

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names: list[str] = []
            if isinstance(child, ast.ImportFrom):
                if child.level == 1 and child.module:
                    names = [child.module.split(".")[0]]
                elif child.level == 1:
                    names = [a.name for a in child.names]
                elif child.module and child.module.startswith("galaxy_core"):
                    parts = child.module.split(".")
                    names = [parts[1]] if len(parts) > 1 else [a.name for a in child.names]
            elif isinstance(child, ast.Import):
                names = [a.name.split(".")[1] for a in child.names if a.name.startswith("galaxy_core.")]
            for n in names:
                if n in MODULES:
                    found[n] = found.get(n, False) or top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            visit(child, inner)

    visit(tree, True)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_no_import_cycle():
    """Depth-first search over every import, wherever it is placed; a cycle fails with its path."""
    state: dict[str, int] = {}

    def walk(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in GRAPH[m]:
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                walk(n, path + [n])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            walk(m, [m])


def test_imports_inside_functions_only_in_the_command_line():
    hidden = {m: sorted(n for n, top in GRAPH[m].items() if not top) for m in MODULES if m not in LAZY}
    assert {m: ns for m, ns in hidden.items() if ns} == {}


def test_no_streamlit_in_the_package():
    for m in MODULES:
        tree = ast.parse((PACKAGE / f"{m}.py").read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert not any(x.split(".")[0] == "streamlit" for x in names), m


def test_long_modules_say_why():
    """A module over ``MAX_LINES`` lines states the reason in its docstring (the word "lines" and the reason)."""
    for m in MODULES:
        text = (PACKAGE / f"{m}.py").read_text()
        if text.count("\n") > MAX_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            assert "lines" in doc, f"{m}.py has {text.count(chr(10))} lines and its docstring does not say why"


def test_every_module_imports_alone():
    """Each module in a fresh interpreter, two at a time: a cycle would show as an ImportError there."""
    def alone(m: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", f"import galaxy_core.{m}"], cwd=PACKAGE.parent,
                              capture_output=True, text=True)

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(MODULES, pool.map(alone, MODULES)))
    assert {m: r.stderr[-500:] for m, r in done.items() if r.returncode} == {}


def test_help_does_not_import_torch():
    """``python -m galaxy_core --help`` and ``summary`` parse without PyTorch (it takes seconds to import)."""
    code = ("import sys\nfrom galaxy_core import cli\ncli.build_parser()\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]")
    subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, check=True)


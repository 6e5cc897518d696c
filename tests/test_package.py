"""The package's shape: one module per job, no module over 500 lines, imports only downhill, no Streamlit in
``galaxy_core``.

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
FILES = {p.stem: [p] for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
FILES |= {d.name: sorted(d.glob("*.py")) for d in PACKAGE.iterdir() if (d / "__init__.py").is_file()}
"""Each of the package's modules with its source files: a subpackage (the command line) counts as one module."""
MODULES = sorted(FILES)
LAZY = {"cli"}
"""Modules allowed to import package modules inside functions: the command line imports each stage inside the
command that needs it, so that ``--help`` and ``summary`` do not wait for PyTorch."""
MAX_LINES = 500


def _target(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The dotted names an import statement in ``path`` reaches (``from . import x`` in ``galaxy_core/cli/a.py`` is
    ``galaxy_core.cli.x``), as Python resolves relative imports."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        package = ["galaxy_core"] + list(path.relative_to(PACKAGE).parts[:-1])
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    return [base] if node.module else [f"{base}.{a.name}" for a in node.names]


def _imports(module: str) -> dict[str, bool]:
    """The package modules ``module`` imports, each mapped to whether the import is at module level (an import under
    ``if TYPE_CHECKING:`` is for annotations only and does not count; a subpackage importing its own files does
    not count either)."""
    found: dict[str, bool] = {}

    def visit(path: Path, node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in _target(path, child):
                    parts = name.split(".")
                    if parts[0] == "galaxy_core" and len(parts) > 1 and parts[1] in MODULES and parts[1] != module:
                        found[parts[1]] = found.get(parts[1], False) or top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            visit(path, child, inner)

    for path in FILES[module]:
        visit(path, ast.parse(path.read_text()), True)
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
    for m, path in ((m, path) for m in MODULES for path in FILES[m]):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert not any(x.split(".")[0] == "streamlit" for x in names), m


def test_no_module_over_max_lines():
    """One job per module keeps each short enough to read whole: no source file of the package over ``MAX_LINES``."""
    lengths = {str(p.relative_to(PACKAGE)): p.read_text().count("\n") for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


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



def test_the_package_docstring_names_every_module():
    """``galaxy_core/__init__.py`` is the map a newcomer reads first: every module is on it, and nothing else."""
    import re

    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or ""
    named = set(re.findall(r"^ {6}(\w+) ", doc, re.M))
    assert named == set(MODULES)


def test_the_architecture_table_lists_every_module_in_import_order():
    """docs/architecture.md's module table names every module once, each after every module it imports."""
    import re

    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    order = re.findall(r"^\| [a-z]* \| `(\w+)` \|", text, re.M)
    assert sorted(order) == MODULES
    late = [f"{m} imports {n}" for i, m in enumerate(order) for n in GRAPH[m] if order.index(n) > i]
    assert late == []

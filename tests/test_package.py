"""The package's shape: subpackages by stage of the data's trip, at most ``MAX_PER_FOLDER`` modules a folder, no
module over ``MAX_LINES`` lines, imports only downhill (no cycle between modules, none between subpackages), an
import chain of at most ``MAX_CHAIN`` modules, no Streamlit in ``galaxy_core``, and one map of it all
(docs/architecture.md), generated from the code and checked here.

The import graph is read from the source with ``ast`` (imports at any depth, inside functions too), so a cycle hidden
by a function-level import fails here as surely as one at the top; and every module is imported alone in a fresh
interpreter, as a user's ``from galaxy_core.data import cache`` would, where a cycle would meet a half-initialised
module.

Run ``python tests/test_package.py`` to rewrite the map in docs/architecture.md after moving or adding a module.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "galaxy_core"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def _name(path: Path) -> str:
    """``galaxy_core/data/cache.py`` -> ``data.cache``; a subpackage's ``__init__.py`` -> the subpackage's name."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.parent != PACKAGE or p.stem not in ("__init__",
                                                                                                     "__main__")}
MODULES = sorted(FILES)
"""Every module of the package by its dotted name under ``galaxy_core`` (``tree``, ``data.cache``, ``cli.common``);
a subpackage's ``__init__`` by the subpackage's name."""
STAGES = ["data", "demo", "mergers", "models", "predict", "training", "discover", "show", "cli"]
"""The subpackages, in the order of the data's trip: each may import the ones before it (and the shared modules at
the top), never one after it."""
LAZY = "cli"
"""The command line imports each stage inside the command that needs it, so that ``--help`` and ``summary`` do not
wait for PyTorch: the only place where package imports may sit inside functions."""
MAX_LINES = 500
MAX_PER_FOLDER = 8
MAX_CHAIN = 8


def stage(module: str) -> str:
    """The subpackage a module belongs to; a shared module at the top is its own stage (``tree``, ``errors``)."""
    return module.split(".")[0]


def _targets(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement in ``path`` reaches, as Python resolves it: ``from galaxy_core.data
    import cache`` reaches ``data.cache``, ``from galaxy_core.data.cache import GalaxyCache`` reaches ``data.cache``,
    and ``from . import common`` in ``galaxy_core/cli/a.py`` reaches ``cli.common``."""
    if isinstance(node, ast.Import):
        full = [a.name for a in node.names]
    else:
        if node.level == 0:
            base = node.module or ""
        else:
            package = ["galaxy_core"] + list(path.relative_to(PACKAGE).parts[:-1])
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        full = [f"{base}.{a.name}" if f"{base}.{a.name}".removeprefix("galaxy_core.") in FILES else base
                for a in node.names]
    found = []
    for name in full:
        if not name.startswith("galaxy_core."):
            continue
        parts = name.removeprefix("galaxy_core.").split(".")
        while parts and ".".join(parts) not in FILES:  # galaxy_core.data.cache.GalaxyCache -> data.cache
            parts.pop()
        if parts:
            found.append(".".join(parts))
    return found


def _imports(module: str) -> dict[str, bool]:
    """The package modules ``module`` imports, each mapped to whether the import is at module level (an import under
    ``if TYPE_CHECKING:`` is for annotations only and does not count)."""
    found: dict[str, bool] = {}
    path = FILES[module]

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in _targets(path, child):
                    if name != module:
                        found[name] = found.get(name, False) or top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            visit(child, inner)

    visit(ast.parse(path.read_text()), True)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}

    def walk(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := walk(n, path + [n])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := walk(m, [m])):
            return found
    return None


def longest_chain(graph: dict[str, set[str]] | None = None) -> list[str]:
    """The longest path of imports, ``a -> b -> ...``, each importing the next at module level: what Python walks
    when the first is imported (the command line's imports inside its commands are walked only when a command
    runs, and are left out)."""
    graph = graph or {m: {n for n, top in GRAPH[m].items() if top} for m in MODULES}
    memo: dict[str, list[str]] = {}

    def chain(m: str) -> list[str]:
        if m not in memo:
            memo[m] = [m] + max((chain(n) for n in sorted(graph[m])), key=len, default=[])
        return memo[m]

    return max((chain(m) for m in MODULES), key=len)


def test_no_import_cycle_between_modules():
    cycle = _cycle({m: set(GRAPH[m]) for m in MODULES})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_subpackages():
    """A subpackage may import another only if that one never imports it back, through any of their modules."""
    stages = {stage(m) for m in MODULES}
    graph = {s: {stage(n) for m in MODULES if stage(m) == s for n in GRAPH[m]} - {s} for s in stages}
    cycle = _cycle(graph)
    assert cycle is None, "subpackage cycle: " + " -> ".join(cycle or [])


def test_subpackages_import_only_those_before_them_on_the_trip():
    upward = [f"{m} imports {n}" for m in MODULES for n in GRAPH[m]
              if stage(m) in STAGES and stage(n) in STAGES and STAGES.index(stage(n)) > STAGES.index(stage(m))]
    shared_up = [f"{m} imports {n}" for m in MODULES for n in GRAPH[m] if "." not in m and stage(n) in STAGES
                 and m not in STAGES]
    assert upward + shared_up == []


def test_the_longest_import_chain_is_short():
    chain = longest_chain()
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


def test_imports_inside_functions_only_in_the_command_line():
    hidden = {m: sorted(n for n, top in GRAPH[m].items() if not top) for m in MODULES if stage(m) != LAZY}
    assert {m: ns for m, ns in hidden.items() if ns} == {}


def test_no_streamlit_in_the_package():
    for m, path in FILES.items():
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        assert not any(x.split(".")[0] == "streamlit" for x in names), m


def test_no_module_over_max_lines():
    """One job per module keeps each short enough to read whole: no source file of the package over ``MAX_LINES``."""
    lengths = {str(p.relative_to(PACKAGE)): p.read_text().count("\n") for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_no_folder_over_max_modules():
    """A folder a newcomer can take in at a glance: at most ``MAX_PER_FOLDER`` modules beside its ``__init__``."""
    counts = {str(d.relative_to(PACKAGE.parent)): len([p for p in d.glob("*.py") if p.stem not in ("__init__",
                                                                                                  "__main__")])
              for d in [PACKAGE, *(p.parent for p in PACKAGE.glob("*/__init__.py"))]}
    assert {d: n for d, n in counts.items() if n > MAX_PER_FOLDER} == {}


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


# --------------------------------------------------------------------------------------------------------------------
# The map

def _summary(path: Path) -> str:
    """A module's job: the first sentence of its docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return re.split(r"(?<=[a-z)`])\. ", first, maxsplit=1)[0].rstrip(".")


def import_order() -> list[str]:
    """Every module except the subpackages' ``__init__``, the shared ones first and then stage by stage, each after
    everything it imports (a topological order, alphabetical where the imports leave a choice)."""
    rank = {s: i for i, s in enumerate(STAGES)}
    modules = [m for m in MODULES if m not in STAGES]
    placed: list[str] = []
    while len(placed) < len(modules):
        ready = [m for m in modules if m not in placed and all(n in placed or n in STAGES for n in GRAPH[m])]
        placed.append(min(ready, key=lambda m: (rank.get(stage(m), -1), m)))
    return placed


def package_map() -> str:
    """The map docs/architecture.md shows between its markers: one table row per module, in import order."""
    rows = ["| stage | module | job |", "| --- | --- | --- |"]
    last = None
    for m in import_order():
        s = stage(m) if stage(m) in STAGES else "shared"
        label = "" if s == last else (f"[`{s}/`](../galaxy_core/{s}/__init__.py)" if s != "shared" else "shared")
        rows.append(f"| {label} | `{m}` | {_summary(FILES[m])} |")
        last = s
    return "\n".join(rows)


BEGIN, END = "<!-- map: generated by python tests/test_package.py -->", "<!-- end of the map -->"


def _between(text: str) -> str:
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_the_architecture_map_is_the_code():
    """docs/architecture.md's map is what ``package_map`` makes of the code now: every module once, in import order,
    with its docstring's first sentence. A moved, added or re-described module fails here until the map is rewritten
    (``python tests/test_package.py``)."""
    assert _between(ARCHITECTURE.read_text()) == package_map()


def test_every_subpackage_says_what_it_does_and_names_its_modules():
    for s in STAGES:
        init = PACKAGE / s / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        own = sorted(p.stem for p in init.parent.glob("*.py") if p.stem != "__init__")
        assert doc and [m for m in own if f"``{m}``" not in doc] == [], s


def test_the_package_docstring_points_at_the_map_and_names_every_stage():
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or ""
    shared = [m for m in MODULES if "." not in m and m not in STAGES]
    assert "docs/architecture.md" in doc
    assert [s for s in STAGES if f"{s}/" not in doc] + [m for m in shared if f"``{m}``" not in doc] == []


if __name__ == "__main__":
    head, rest = ARCHITECTURE.read_text().split(BEGIN, 1)
    ARCHITECTURE.write_text(f"{head}{BEGIN}\n{package_map()}\n{END}{rest.split(END, 1)[1]}")
    print(f"rewrote the map in {ARCHITECTURE}: {len(import_order())} modules; longest import chain "
          f"{len(longest_chain())}: {' -> '.join(longest_chain())}")

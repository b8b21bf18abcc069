"""The import rules of docs/architecture.md, read from the source with `ast`.

Every import of every .py under core/, dashboard/ and pages/ counts: those at the top of a file,
those inside functions and those under `if TYPE_CHECKING:` alike, and `importlib.import_module`
with a literal name. `from pkg import mod` counts as an import of the module pkg.mod when mod is
a submodule, else as an import of pkg. The rules, one test each:

- layers: a module imports its own room and lower levels only (LEVELS below); two rooms on one
  level never import each other (data and model; predict and search); core.train never imports
  core.search (the worker hands the pruner to the run); pages never import keras or tensorflow;
- no import cycle anywhere in core/, dashboard/ or pages/;
- no module imports another module's `_private` name;
- sqlalchemy is imported only inside core/store/;
- dashboard's shared helpers (dashboard/*.py) never import a page folder (dashboard/<page>/),
  and page folders never import each other;
- core never imports streamlit or plotly;
- every import of our own code names a module and a name that exist (a file moved without its
  callers shows here, even where the import sits in a function no test calls).

Each problem is one line: file:line, what is imported, and the rule. The checker itself is tested
on small synthetic trees first, so a pass means the rules held, not that nothing was read.
"""
from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "dashboard", "pages")

# The layer table. A module belongs to the longest room that names it or a package above it
# ("core" itself names only core/__init__.py). It may import its own room and lower levels.
LEVELS = {
    "core": 0, "core.settings": 0, "core.errors": 0,  # the base: one room, anything may import it
    "core.data": 1, "core.model": 1,                    # never each other
    "core.config": 2,                                   # the architectures' rules and the optimizer table
    "core.store": 3,                                    # may use data, model and config
    "core.predict": 4, "core.search": 4,                # never each other
    "core.train": 5,                                    # never core.search
    "core.worker": 6,                                   # composition root: train + search
    "core.interop": 6,                                  # runs in and out: store, train, predict (never the worker)
    "core.cli": 7, "core.__main__": 7, "core.track": 7,
    "dashboard": 8,                                     # any of core
    "pages": 9,                                         # dashboard and core
}
SHARED_ROOM = {"core.settings": "core", "core.errors": "core",  # the base is one room
               "core.__main__": "core.cli"}                     # `python -m core` is the CLI's door
NEVER = {  # (importing room, imported room): why, on top of the levels
    ("core.train", "core.search"): "core.train never imports core.search: the worker hands the pruner to the run",
}
PAGES_NEVER = ("keras", "tensorflow")
STORE = "core.store"
UI_LIBRARIES = ("streamlit", "plotly")


@dataclass(frozen=True)
class Import:
    path: str            # the importing file, relative to the root: "core/train/run.py"
    line: int
    source: str          # the importing module: "core.train.run"
    target: str          # the imported module, resolved: "core.search.study", "sqlalchemy"
    name: str | None     # for `from target import name` where name is no module; else None
    scope: str | None    # the enclosing function, or None at module level

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def what(self) -> str:
        inside = f" (in {self.scope})" if self.scope else ""
        return f"{self.source} imports {self.target}{'.' + self.name if self.name else ''}{inside}"


@dataclass
class Tree:
    root: Path
    packages: tuple[str, ...]      # the top-level folders read
    files: dict[str, str]          # module name -> relative path, for every .py
    known: set[str]                # modules and package folders: what an import may resolve to
    imports: list[Import]
    bound: dict[str, set[str] | None]  # module -> names bound at its top level (None: cannot tell)


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top_level_names(tree: ast.Module) -> set[str] | None:
    """Names a module binds outside functions and classes; None when a star import or a module
    `__getattr__` makes that unknowable."""
    names: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)) or type(node).__name__ == "TryStar":
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)
    return names


class _Reader(ast.NodeVisitor):
    """Collects every import of one file, with the function it sits in."""

    def __init__(self, tree: Tree, path: str, module: str, package: str):
        self.tree, self.path, self.module, self.package = tree, path, module, package
        self.scopes: list[str] = []

    def _in(self, node):
        self.scopes.append(node.name)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _in

    def _add(self, node: ast.AST, target: str, name: str | None = None) -> None:
        scope = ".".join(self.scopes) or None
        self.tree.imports.append(Import(self.path, node.lineno, self.module, target, name, scope))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[:len(parts) - (node.level - 1)])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        for alias in node.names:
            if alias.name != "*" and f"{module}.{alias.name}" in self.tree.known:
                self._add(node, f"{module}.{alias.name}")
            else:
                self._add(node, module, None if alias.name == "*" else alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node, node.args[0].value)
        self.generic_visit(node)


def scan(root: Path, packages: tuple[str, ...] = PACKAGES) -> Tree:
    """Read every .py under root/<package> for each package."""
    paths = sorted(p.relative_to(root) for pkg in packages if (root / pkg).is_dir()
                   for p in (root / pkg).rglob("*.py") if not any(part.startswith(".") for part in p.parts))
    files = {module_name(p): p.as_posix() for p in paths}
    folders = {".".join(p.parent.parts[:i]) for p in paths for i in range(1, len(p.parent.parts) + 1)}
    tree = Tree(root, packages, files, set(files) | folders, [], {})
    for module, rel in files.items():
        parsed = ast.parse((root / rel).read_text(encoding="utf-8"), filename=rel)
        tree.bound[module] = top_level_names(parsed)
        package = module if rel.endswith("__init__.py") else module.rpartition(".")[0]
        _Reader(tree, rel, module, package).visit(parsed)
    return tree


def _ours(tree: Tree, target: str) -> bool:
    return target.split(".")[0] in tree.packages


def room_of(module: str) -> str | None:
    rooms = [r for r in LEVELS if module == r or (r != "core" and module.startswith(r + "."))]
    if not rooms:
        return None
    room = max(rooms, key=len)
    return SHARED_ROOM.get(room, room)


def _level(room: str) -> int:
    return LEVELS[room]


# ------------------------------------------------------------------------------ the rules


def layer_problems(tree: Tree) -> list[str]:
    problems = [f"{rel}:1: {module} is in no room of the layer table (add it to LEVELS in tests/test_imports.py "
                f"and to docs/architecture.md) [layers]"
                for module, rel in tree.files.items() if room_of(module) is None]
    for imp in tree.imports:
        src = room_of(imp.source)
        if src == "pages" and imp.target.split(".")[0] in PAGES_NEVER:
            problems.append(f"{imp.where}: {imp.what}: pages never import keras or tensorflow, they call core [layers]")
        if not _ours(tree, imp.target):
            continue
        dst = room_of(imp.target)
        if src is None or dst is None or src == dst:
            continue
        if (src, dst) in NEVER:
            problems.append(f"{imp.where}: {imp.what}: {NEVER[src, dst]} [layers]")
        elif _level(dst) == _level(src):
            problems.append(f"{imp.where}: {imp.what}: {src} and {dst} share level {_level(src)} "
                            f"and never import each other [layers]")
        elif _level(dst) > _level(src):
            problems.append(f"{imp.where}: {imp.what}: {src} (level {_level(src)}) may not import "
                            f"{dst} (level {_level(dst)}); imports go to lower levels only [layers]")
    return problems


def import_graph(tree: Tree) -> dict[str, dict[str, Import]]:
    """module -> {imported module: its first import}, over the modules of the tree."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in tree.files}
    for imp in sorted(tree.imports, key=lambda i: (i.path, i.line)):
        if imp.target in tree.files and imp.target != imp.source:
            graph[imp.source].setdefault(imp.target, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def shortest_cycle(graph: dict[str, dict[str, Import]], start: str, members: set[str]) -> list[Import]:
    """The imports of a shortest path from `start` back to itself inside one component."""
    came: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt, imp in sorted(graph[node].items()):
            if nxt not in members:
                continue
            if nxt == start:
                path = [imp]
                while path[0].source != start:
                    path.insert(0, came[path[0].source])
                return path
            if nxt not in came:
                came[nxt] = imp
                queue.append(nxt)
    raise AssertionError(f"{start} is in a component but on no cycle")


def cycle_problems(tree: Tree) -> list[str]:
    graph = import_graph(tree)
    problems = []
    for component in strongly_connected(graph):
        path = shortest_cycle(graph, component[0], set(component))
        steps = " -> ".join(f"{imp.source} ({imp.where}{', in ' + imp.scope if imp.scope else ''})" for imp in path)
        also = sorted(set(component) - {imp.source for imp in path})
        problems.append(f"{path[0].where}: import cycle: {steps} -> {path[0].source}"
                        + (f"; the same knot also holds {', '.join(also)}" if also else "") + " [cycles]")
    return problems


def private_problems(tree: Tree) -> list[str]:
    return [f"{imp.where}: {imp.what}: {imp.name} is private to {imp.target}; make it public or move the caller "
            f"[private names]"
            for imp in tree.imports
            if imp.name and imp.name.startswith("_") and not imp.name.startswith("__") and imp.target != imp.source]


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def sqlalchemy_problems(tree: Tree) -> list[str]:
    return [f"{imp.where}: {imp.what}: sqlalchemy is imported only inside core/store/ [sql in the store]"
            for imp in tree.imports if _inside(imp.target, "sqlalchemy") and not _inside(imp.source, STORE)]


def page_folder_problems(tree: Tree) -> list[str]:
    folders = {rel.split("/")[1] for rel in tree.files.values() if rel.startswith("dashboard/") and rel.count("/") >= 2}
    folders |= {m.split(".")[1] for m in tree.known if m.startswith("dashboard.") and m.count(".") == 1
                and m not in tree.files}

    def folder(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) >= 2 and parts[0] == "dashboard" and parts[1] in folders else None

    problems = []
    for imp in tree.imports:
        if not _inside(imp.source, "dashboard") or (dst := folder(imp.target)) is None:
            continue
        src = folder(imp.source)
        if src is None:
            problems.append(f"{imp.where}: {imp.what}: dashboard's shared helpers never import a page folder "
                            f"(dashboard/{dst}/) [page folders]")
        elif src != dst:
            problems.append(f"{imp.where}: {imp.what}: page folders never import each other "
                            f"(dashboard/{src}/ -> dashboard/{dst}/) [page folders]")
    return problems


def ui_in_core_problems(tree: Tree) -> list[str]:
    return [f"{imp.where}: {imp.what}: core never imports streamlit or plotly [core stays headless]"
            for imp in tree.imports if _inside(imp.source, "core")
            and (imp.target.split(".")[0] in UI_LIBRARIES or imp.target.startswith("streamlit_"))]


def resolution_problems(tree: Tree) -> list[str]:
    problems = []
    for imp in tree.imports:
        if not _ours(tree, imp.target):
            continue
        if imp.target not in tree.known:
            problems.append(f"{imp.where}: {imp.what}: there is no module {imp.target} [imports resolve]")
        elif imp.name and imp.target in tree.files and (names := tree.bound[imp.target]) is not None \
                and imp.name not in names:
            rel = tree.files[imp.target]
            also = f"no module {imp.target}.{imp.name}, and " if rel.endswith("__init__.py") else ""
            problems.append(f"{imp.where}: {imp.what}: {also}{rel} defines no {imp.name} [imports resolve]")
    return problems


RULES = {
    "layers": layer_problems,
    "cycles": cycle_problems,
    "private names": private_problems,
    "sql in the store": sqlalchemy_problems,
    "page folders": page_folder_problems,
    "core stays headless": ui_in_core_problems,
    "imports resolve": resolution_problems,
}


def report(rule: str, problems: list[str]) -> str:
    return f"{len(problems)} import(s) break the rule '{rule}' (docs/architecture.md, Import rules):\n" \
        + "\n".join(problems)


# ------------------------------------------------------------------------------ the checker on synthetic trees


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


CLEAN = {
    "core/__init__.py": "",
    "core/errors.py": "class DigitLabError(Exception):\n    pass\n",
    "core/settings.py": "from core.errors import DigitLabError\n",
    "core/data/__init__.py": "",
    "core/data/dataset.py": "from core.settings import *\n\ndef check_dataset(path):\n    return path\n",
    "core/store/__init__.py": "from .facade import RunStore\n",
    "core/store/facade.py": "import sqlalchemy as sa\nfrom . import db\n\nclass RunStore:\n    pass\n",
    "core/store/db.py": "from sqlalchemy import create_engine\n",
    "core/search/__init__.py": "",
    "core/search/study.py": "from core.data.dataset import check_dataset\n\ndef prune_check():\n    pass\n",
    "core/train/__init__.py": "",
    "core/train/run.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.store import RunStore\n\n"
                         "def train():\n    from core.data import dataset\n",
    "core/worker.py": "import importlib\n\ndef work():\n    from core.train.run import train\n"
                      "    importlib.import_module('core.search.study')\n",
    "dashboard/__init__.py": "",
    "dashboard/charts.py": "import plotly\n",
    "dashboard/train/__init__.py": "",
    "dashboard/train/form.py": "import streamlit as st\nfrom dashboard import charts\nfrom core.worker import work\n",
    "dashboard/runs/table.py": "from dashboard.charts import *\n",
    "pages/train.py": "from dashboard.train.form import st\n",
}


def test_a_clean_tree_breaks_no_rule_and_every_kind_of_import_is_read(tmp_path):
    tree = scan(write_tree(tmp_path, CLEAN))
    for rule, check in RULES.items():
        assert check(tree) == [], rule
    edges = {(i.source, i.target, i.scope) for i in tree.imports}
    assert ("core.store", "core.store.facade", None) in edges          # relative, a name of a submodule
    assert ("core.store.facade", "core.store.db", None) in edges       # `from . import db` is the module
    assert ("core.train.run", "core.store", None) in edges             # under TYPE_CHECKING
    assert ("core.train.run", "core.data.dataset", "train") in edges   # in a function, `from pkg import mod`
    assert ("core.worker", "core.search.study", "work") in edges       # importlib with a literal name
    assert ("dashboard.train.form", "dashboard.charts", None) in edges


def test_the_checker_finds_a_cycle_a_back_import_and_each_broken_rule(tmp_path):
    bad = dict(CLEAN)
    bad["core/search/study.py"] = "from core.data.dataset import check_dataset\n\ndef prune_check():\n" \
                                  "    from core.train.run import train\n"          # back-import, line 4
    bad["core/train/run.py"] = "from core.search.study import prune_check\n"       # train -> search, line 1
    bad["core/data/dataset.py"] = "from core.store.facade import _cache\nimport sqlalchemy\n" \
                                  "from core.model.arch import Net\nimport streamlit\n"
    bad["core/model/arch.py"] = "import plotly.express as px\nfrom core.data.dataset import nothing_here\n"
    bad["dashboard/charts.py"] = "import dashboard.train\n"
    bad["dashboard/runs/table.py"] = "from dashboard.train.form import st\n"
    bad["pages/train.py"] = "import keras\nfrom core.gone import thing\n"
    tree = scan(write_tree(tmp_path, bad))
    found = {rule: check(tree) for rule, check in RULES.items()}
    text = {rule: "\n".join(problems) for rule, problems in found.items()}

    assert "core/search/study.py:4: core.search.study imports core.train.run.train (in prune_check): " \
           "core.search (level 4) may not import core.train (level 5)" in text["layers"]
    assert "core/train/run.py:1: core.train.run imports core.search.study.prune_check: " \
           "core.train never imports core.search" in text["layers"]
    assert "core/data/dataset.py:1: core.data.dataset imports core.store.facade._cache: core.data (level 1) " \
           "may not import core.store (level 3)" in text["layers"]
    assert "core.data and core.model share level 1" in text["layers"]
    assert "core/model/arch.py:2" in text["layers"]
    assert "core/model/arch.py:2" in text["imports resolve"] and "defines no nothing_here" in text["imports resolve"]
    assert "pages/train.py:1: pages.train imports keras" in text["layers"]
    assert "pages/train.py:2" in text["imports resolve"] and "no module core.gone" in text["imports resolve"]

    assert len(found["cycles"]) == 2, text["cycles"]  # study <-> run, dataset <-> arch
    assert "import cycle: core.search.study (core/search/study.py:4, in prune_check) -> " \
           "core.train.run (core/train/run.py:1) -> core.search.study" in text["cycles"]
    assert "core.data.dataset (core/data/dataset.py:3) -> core.model.arch (core/model/arch.py:2) " \
           "-> core.data.dataset" in text["cycles"]

    assert found["private names"] == [
        "core/data/dataset.py:1: core.data.dataset imports core.store.facade._cache: _cache is private to "
        "core.store.facade; make it public or move the caller [private names]"]
    assert [p.split(":")[0:2] for p in found["sql in the store"]] == [["core/data/dataset.py", "2"]]
    assert [p.split(":")[0:2] for p in found["core stays headless"]] == [["core/data/dataset.py", "4"],
                                                                         ["core/model/arch.py", "1"]]
    assert [p.split(": ", 1)[0] for p in found["page folders"]] == ["dashboard/charts.py:1", "dashboard/runs/table.py:1"]
    assert "shared helpers never import a page folder (dashboard/train/)" in found["page folders"][0]
    assert "(dashboard/runs/ -> dashboard/train/)" in found["page folders"][1]


def test_a_module_outside_the_layer_table_is_named(tmp_path):
    tree = scan(write_tree(tmp_path, {**CLEAN, "core/extra.py": ""}))
    assert layer_problems(tree) == ["core/extra.py:1: core.extra is in no room of the layer table (add it to "
                                    "LEVELS in tests/test_imports.py and to docs/architecture.md) [layers]"]


# ------------------------------------------------------------------------------ the rules on the real tree


@pytest.fixture(scope="module")
def tree() -> Tree:
    return scan(ROOT)


def test_the_scan_reads_the_whole_tree(tree):
    """Guards against a vacuous pass: the real tree is read, in functions too."""
    assert {"core", "core.cli", "core.config", "core.worker", "dashboard.app", "pages.train"} <= set(tree.files)
    assert len(tree.files) >= 50 and len(tree.imports) >= 300
    assert sum(imp.scope is not None for imp in tree.imports) >= 30  # imports inside functions are read
    rooms = {SHARED_ROOM.get(room, room) for room in LEVELS} - {"core.track"}
    assert {room_of(m) for m in tree.files} >= rooms  # every room holds a module


@pytest.mark.parametrize("rule", RULES)
def test_the_import_rules_hold(tree, rule):
    problems = RULES[rule](tree)
    assert not problems, report(rule, problems)


def test_the_architecture_page_names_every_room():
    """docs/architecture.md's layer table and LEVELS name the same rooms."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [room for room in LEVELS if f"`{room}`" not in page]
    assert not missing, f"docs/architecture.md does not name these rooms of LEVELS: {missing}"


def test_the_benchmarks_and_tests_import_what_exists():
    """bench/ and tests/ follow the moves too, in the imports inside their functions as well."""
    everything = scan(ROOT, (*PACKAGES, "bench", "tests"))
    problems = [p for p in resolution_problems(everything) if p.startswith(("bench/", "tests/"))]
    assert not problems, report("imports resolve", problems)

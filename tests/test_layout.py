"""The package's shape: no import cycles in trainer/, the CONTRIBUTING layout table matches the tree,
and a module over 450 lines says why in its docstring."""

import ast
import os
import re

from conftest import REPO

LONG = 450


def modules() -> dict[str, str]:
    """{dotted name: path} of every module under trainer/ (a package is named by its __init__.py)."""
    found = {}
    for folder, _, files in os.walk(os.path.join(REPO, "trainer")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def imports(path: str, known: dict) -> set[str]:
    """The trainer modules a file imports, at the top or inside functions (both can close a cycle)."""
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "trainer":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "trainer"}
    return {m for m in out if m in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_trainer_has_no_import_cycles():
    known = modules()
    graph = {m: imports(path, known) - {m} for m, path in known.items()}
    assert cycles(graph) == []
    # the checker sees a cycle when there is one
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_contributing_layout_table_matches_the_tree():
    text = open(os.path.join(REPO, "CONTRIBUTING.md"), encoding="utf-8").read()
    rows = set(re.findall(r"^\| `(trainer/[^`]+)` \|", text, flags=re.M))
    files = {os.path.relpath(p, REPO) for p in modules().values()}
    for row in rows:
        assert os.path.exists(os.path.join(REPO, row)), f"CONTRIBUTING names {row}, which does not exist"
    listed = {f for f in files if f in rows or (f.endswith("__init__.py") and os.path.dirname(f) + "/" in rows)}
    assert files - listed - {"trainer/__init__.py", "trainer/__main__.py"} == set()


def test_long_modules_say_why():
    for name, path in modules().items():
        source = open(path, encoding="utf-8").read()
        if source.count("\n") > LONG:
            doc = ast.get_docstring(ast.parse(source)) or ""
            assert re.search(r"\d+ lines", doc), f"{name} has over {LONG} lines and no reason in its docstring"


def test_every_module_has_its_tests_or_says_where_they_are():
    text = open(os.path.join(REPO, "CONTRIBUTING.md"), encoding="utf-8").read()
    elsewhere = set()
    for row in re.findall(r"^  \| (`trainer/[^|]+) \| `tests/", text, flags=re.M):
        first = re.findall(r"`([^`]+)`", row)
        folder = os.path.dirname(first[0])
        elsewhere |= {first[0]} | {f"{folder}/{name}" for name in first[1:]}
    for name, path in modules().items():
        base = os.path.basename(path)
        if base in ("__init__.py", "__main__.py"):
            continue
        relative = os.path.relpath(path, REPO)
        mirrored = os.path.exists(os.path.join(REPO, "tests", f"test_{base}"))
        assert mirrored or relative in elsewhere, f"{relative}: no tests/test_{base} and not listed in CONTRIBUTING"
    for listed in elsewhere:
        assert os.path.exists(os.path.join(REPO, listed)), f"CONTRIBUTING lists {listed}, which does not exist"


def test_the_library_api_the_package_docstring_declares_exists():
    import importlib

    import trainer

    declared = re.findall(r"^\s+trainer\.(\w+)\.([\w /]+?)(?:\(|\s{2,})", trainer.__doc__, flags=re.M)
    assert len(declared) >= 6
    for module, names in declared:
        loaded = importlib.import_module(f"trainer.{module}")
        for name in (n.strip() for n in names.split("/")):
            assert hasattr(loaded, name), f"trainer.{module}.{name} is declared in trainer/__init__.py but missing"

"""The package's modules import each other without a cycle (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import skolon_pipeline

PACKAGE = Path(skolon_pipeline.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module → the package's modules it imports anywhere in its source (top level or in a function)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import mod` imports the module pkg.mod when there is one, else a name from pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 30 and graph["skolon_pipeline.night"]  # the graph is really read
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_a_cycle_through_a_lazy_import_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


# The stages of a night in the order the package reads (docs/development.md): a module imports only from its
# own stage, the stages before it and the shared helpers. Two descriptions every stage may use are shared on
# purpose: the warehouse tables (publish.tables) and the error a source raises (sources.drops).
SHARED = {"bounds", "calendar", "config", "duck", "files", "text", "instance", "publish.tables", "sources.drops"}
STAGES = [
    {"pull"},
    # the readers fill the canonical tables validate/canonical.py describes (many readers, one canonical model),
    # and the OneRoster reader records its row failures with validate's helpers: extract and validate are a pair
    {"sources", "validate"},
    {"rules"},
    {"publish"},
    {"exports"},
    {"explain", "query", "notify", "summary", "serve"},
    {"night", "runs", "testing", "demo"},
    {"defs", "definitions"},
    {"cli"},
]


def _stage_of(module: str) -> int:
    """-1 for the shared helpers, else the index of the module's stage in STAGES."""
    rest = module.removeprefix("skolon_pipeline").lstrip(".")
    if not rest or rest in SHARED or rest.split(".")[0] in SHARED:
        return -1
    top = rest.split(".")[0]
    return next(i for i, stage in enumerate(STAGES) if top in stage)


def backwards_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} → {target}"
        for module, targets in graph.items()
        for target in targets
        if _stage_of(module) >= 0 and _stage_of(target) > _stage_of(module)
    )


def test_a_stage_imports_only_from_the_stages_before_it():
    backwards = backwards_imports(import_graph())
    assert not backwards, "a stage imports from a later one: " + ", ".join(backwards)


def test_the_stage_order_check_sees_a_backwards_import():
    rules, exports, tables = (
        "skolon_pipeline.rules.engine",
        "skolon_pipeline.exports.people",
        "skolon_pipeline.publish.tables",
    )
    assert backwards_imports({rules: {exports, tables}, exports: {rules}}) == [f"{rules} → {exports}"]


def _writes_environ(node: ast.AST) -> bool:
    """os.environ[...] = / del os.environ[...] / os.environ.update|setdefault|pop|clear(...) / os.putenv(...)"""

    def is_environ(n: ast.AST) -> bool:
        return (isinstance(n, ast.Attribute) and n.attr == "environ") or (isinstance(n, ast.Name) and n.id == "environ")

    if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        return any(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        return (is_environ(f.value) and f.attr in ("update", "setdefault", "pop", "popitem", "clear")) or f.attr in (
            "putenv",
            "unsetenv",
        )
    return False


def test_the_package_never_writes_the_environment():
    """Settings are built once and passed to every step; nothing in the package changes os.environ."""
    writes = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if _writes_environ(node)
    ]
    assert writes == []
    assert _writes_environ(ast.parse("os.environ['X'] = '1'").body[0])
    assert _writes_environ(ast.parse("os.environ.update(X='1')").body[0].value)
    assert not _writes_environ(ast.parse("os.environ.get('X')").body[0].value)

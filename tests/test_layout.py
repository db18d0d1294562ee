"""The layout keeps its shape: layers import only downward, no module imports itself back round,
no function grows past LONG lines without a `# long:` reason beside it, no CLI command module
past COMMAND_MODULE lines. Read from the source with `ast`, so a failure names file, line and
import (issue #22; README "Development" says where each kind of change goes).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

# Bottom to top. A module may import its own layer and those before it, never one after it.
# The longest matching prefix decides a module's layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("root", ("swarm",)),  # swarm/__init__.py: the version and SCHEMA_VERSION, nothing else
    ("core", ("swarm.core",)),
    ("db", ("swarm.db",)),
    ("facts", ("swarm.facts",)),
    ("queue", ("swarm.queue",)),
    ("lab", ("swarm.lab",)),
    # tools/ is the outside world (deploy, benchmark, kernel builds, NVML): it may use every
    # swarm domain layer; the presentation may render what it measured; adapters drive it.
    ("tools", ("tools",)),
    ("present", ("swarm.present",)),
    # the worker's one registry of executors: an adapter (it runs lab passes that write README)
    ("executors", ("tools.executors", "tools.run_job")),
    ("web", ("swarm.web",)),
    ("mcp", ("swarm.mcp",)),
    ("cli", ("swarm.cli",)),
)
LONG = 60  # lines of a function, its nested functions included
COMMAND_MODULE = 400  # lines of one module of swarm/cli/
PACKAGES = ("swarm", "tools")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    path: str
    line: int
    text: str
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs, but still a dependency


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def layer(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS in tests/test_layout.py"
    return rank


def statements(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, and whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        yield node, typing_only
        guarded = isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        if guarded:
            assert isinstance(node, ast.If)
            for child in node.body:
                yield child, True
                yield from statements(child, True)
            for child in node.orelse:
                yield child, typing_only
                yield from statements(child, typing_only)
        else:
            yield from statements(node, typing_only)


def imports(modules: dict[str, Path]) -> Iterator[Import]:
    """Every import of one of our modules, lazy and TYPE_CHECKING ones included."""
    for name, path in modules.items():
        text = path.read_text()
        lines = text.splitlines()
        is_package = path.name == "__init__.py"
        for node, typing_only in statements(ast.parse(text)):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join([*here, base] if base else here)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in dict.fromkeys(targets):
                if target in modules and target != name:
                    where = str(path.relative_to(REPO))
                    line = lines[node.lineno - 1].strip()
                    yield Import(name, target, where, node.lineno, line, typing_only)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{i.path}:{i.line}: `{i.text}` — {i.source} ({LAYERS[layer(i.source)][0]}) imports "
        f"{i.target} ({LAYERS[layer(i.target)][0]}), a higher layer"
        for i in imports(sources())
        if layer(i.target) > layer(i.source)
    ]
    assert not upward, "lower layers never import higher ones:\n" + "\n".join(upward)


def cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    """Counted over the imports that run, lazy ones included; a TYPE_CHECKING import never runs
    (it still has to point down a layer: the test above counts it)."""
    edges: dict[str, dict[str, Import]] = {}
    for i in imports(sources()):
        if i.typing_only:
            continue
        edges.setdefault(i.source, {}).setdefault(i.target, i)
    report = []
    for component in cycles(edges):
        inside = set(component)
        report.append("cycle: " + " <-> ".join(component))
        report += [
            f"  {i.path}:{i.line}: `{i.text}`"
            for source in component
            for target, i in sorted(edges[source].items())
            if target in inside
        ]
    assert not report, "modules import each other round in a circle:\n" + "\n".join(report)


def reasoned(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A `# long: why` on the def line or the line just above the function (and decorators)."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    around = [lines[node.lineno - 1], lines[first - 2] if first >= 2 else ""]
    return any("# long:" in line and line.split("# long:", 1)[1].strip() for line in around)


def test_no_function_is_long_without_a_reason_beside_it() -> None:
    long = []
    for path in sources().values():
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > LONG and not reasoned(lines, node):
                long.append(
                    f"{path.relative_to(REPO)}:{node.lineno}: {node.name} is {length} lines"
                )
    assert not long, (
        f"functions over {LONG} lines need splitting or a `# long: why` comment on the line "
        "above:\n" + "\n".join(long)
    )


def test_no_command_module_is_over_the_size_limit() -> None:
    big = [
        f"{path.relative_to(REPO)}: {n} lines"
        for path in sorted((REPO / "swarm" / "cli").glob("*.py"))
        if (n := len(path.read_text().splitlines())) > COMMAND_MODULE
    ]
    assert not big, f"command modules over {COMMAND_MODULE} lines:\n" + "\n".join(big)


def test_the_layout_checks_find_what_they_are_for() -> None:
    """The checks themselves: a cycle and an upward import in a made-up graph are found."""
    a_b = Import("a", "b", "a.py", 1, "import b", False)
    b_a = Import("b", "a", "b.py", 1, "import a", False)
    assert cycles({"a": {"b": a_b}, "b": {"a": b_a}}) == [["a", "b"]]
    assert cycles({"a": {"b": a_b}}) == []
    assert layer("swarm.queue.queue") > layer("swarm.facts.findings") > layer("swarm.core.errors")
    assert layer("tools.executors") > layer("swarm.present.readme") > layer("tools.deploy")


def test_the_readme_exit_code_table_is_the_one_rendered_from_the_errors() -> None:
    from swarm.cli.base import epilog
    from swarm.core.errors import exit_codes
    from swarm.present.readme import exit_code_table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert exit_code_table() in readme, "README's exit code table: paste exit_code_table()"
    assert all(f"{row.code} {row.label}" in epilog() for row in exit_codes())


def test_the_task_kinds_type_lists_the_kinds_that_have_a_spec_entry() -> None:
    from typing import get_args

    from swarm.core.kinds import TaskKind
    from swarm.queue.specs import KIND_SPECS

    assert set(get_args(TaskKind)) == set(KIND_SPECS)


def test_every_error_class_is_defined_in_the_one_hierarchy() -> None:
    """swarm/core/errors.py is the one place: the exit-code table is rendered from it."""
    errors = REPO / "swarm" / "core" / "errors.py"
    ours = {n.name for n in ast.parse(errors.read_text()).body if isinstance(n, ast.ClassDef)}
    elsewhere = []
    for path in sources().values():
        if path == errors:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & ours:
                    elsewhere.append(f"{path.relative_to(REPO)}:{node.lineno}: class {node.name}")
    assert not elsewhere, "error classes outside swarm/core/errors.py:\n" + "\n".join(elsewhere)

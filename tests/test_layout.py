"""The package's layout shows the graph: no import cycles; three layers that point one way (the stage families
import the bottom, `core`, and never the top, `workflow`; the bottom imports neither); and no stage family
reaches into another family's modules beyond the ones that family lists as public (its `PUBLIC`)."""
from __future__ import annotations

import ast
import importlib
import re

from morph.core import source
from morph.core.artifacts import common, data, report, select, train

FAMILIES = ("data", "train", "latency", "law", "select", "evaluate", "report")
BOTTOM = ("core",)
TOP = ("workflow", "cli")
ROOT = ("__init__",)  # the package's own; the shared modules (shape, io, errors, ...) live in core
# A layer may import its own and the layers after it, never one before it.
ORDER = (TOP, FAMILIES, BOTTOM + ROOT)


def all_modules() -> list[str]:
    out = []
    for path in sorted(source.PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(source.PACKAGE_DIR.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def package(module: str) -> str:
    """The package right under morph a module belongs to (a root module is its own), or "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    return next(i for i, names in enumerate(ORDER) if package(module) in names)


def upward_imports(graph: dict[str, frozenset[str]]) -> list[str]:
    """Every import from a lower layer's package into a higher one's."""
    return [f"{m} imports {dep}" for m, deps in graph.items() for dep in deps if layer(dep) < layer(m)]


def import_graph() -> dict[str, frozenset[str]]:
    return {m: source.direct_imports(m) - {m} for m in all_modules()}


def public(family: str) -> tuple[str, ...]:
    tree = ast.parse(source.module_file(f"morph.{family}").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "PUBLIC":
            return ast.literal_eval(node.value)
    raise AssertionError(f"morph/{family}/__init__.py declares no PUBLIC")


def family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in FAMILIES else None


def test_no_import_cycles():
    graph = import_graph()
    done, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in done:
            return
        stack.append(m)
        for dep in graph.get(m, ()):
            if dep.count(".") >= m.count(".") or not m.startswith(dep + "."):  # a module's own package is not a cycle
                visit(dep)
        stack.pop()
        done.add(m)

    for m in graph:
        visit(m)


def test_every_package_has_a_layer():
    assert {package(m) for m in all_modules()} <= {p for names in ORDER for p in names}


def test_layers_point_one_way():
    assert not upward_imports(import_graph())


def test_the_direction_check_catches_a_stage_importing_the_top_and_the_bottom_importing_a_stage():
    graph = import_graph()
    stage_up = graph | {"morph.train.run": graph["morph.train.run"] | {"morph.workflow.pipeline"}}
    assert upward_imports(stage_up) == ["morph.train.run imports morph.workflow.pipeline"]
    bottom_up = graph | {"morph.core.grid": graph["morph.core.grid"] | {"morph.law.forms"}}
    assert upward_imports(bottom_up) == ["morph.core.grid imports morph.law.forms"]


def test_families_import_only_each_others_public_modules():
    offences = []
    for m in all_modules():
        own = family(m)
        for dep in source.direct_imports(m):
            other = family(dep)
            if own and other and other != own and dep.split(".")[2] not in public(other):
                offences.append(f"{m} imports {dep}")
    assert not offences, offences


def test_each_family_is_a_folder_and_the_root_holds_only_the_cli():
    root = sorted(p.stem for p in source.PACKAGE_DIR.glob("*.py"))
    assert root == sorted((*ROOT, "cli")), root
    assert all((source.PACKAGE_DIR / f / "__init__.py").is_file() for f in (*FAMILIES, *BOTTOM, "workflow"))


# -- artifact names: declared once, in morph/core/artifacts ---------------------------------------------------
ARTIFACTS = source.PACKAGE_DIR / "core" / "artifacts"
WORKFLOW_FILES = [source.REPO / "Snakefile", *sorted((source.REPO / "rules").glob("*.smk"))]
TESTS = source.REPO / "tests"
# The tests' own modules (tests/data holds data, not code).
TEST_FILES = sorted(TESTS.glob("*.py"))


def is_name(value: str) -> bool:
    """A file name or path: bare words such as `model` are too common in prose and code to police, suffixes such
    as .json are no names, and a string with a space or a brace is prose or a template."""
    return bool(value) and not value.startswith(".") and " " not in value and "{" not in value and (
        "." in value or "/" in value)


def declared_names() -> set[str]:
    """The file names and paths the artifacts modules declare: their string literals, the paths they compose
    (`data.TOKENS_META`), and each declared figure's file (a `*_FIGURE` or `*_FIGURES` name, drawn to
    `common.figure(name)`)."""
    names = set()
    for path in ARTIFACTS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value.strip("/"))
        module = importlib.import_module(f"morph.core.artifacts.{path.stem}")
        for key, value in vars(module).items():
            if key.isupper() and isinstance(value, str):
                names.add(value.strip("/"))
            if key.endswith(("_FIGURE", "_FIGURES")):
                names.update(common.figure(f) for f in ((value,) if isinstance(value, str) else value))
    return {name for name in names if is_name(name)}


def spelled_out(text: str, names: set[str], python: bool) -> list[tuple[int, str]]:
    """(line, literal) for each string literal, or literal piece of an f-string, that is a declared name, or a
    path ending in, or the bare name of, a declared file (`runs.csv`, `out/meta.json`)."""
    if python:
        literals = [(n.lineno, n.value) for n in ast.walk(ast.parse(text))
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    else:  # Snakemake's syntax is not Python's: its quoted strings, line by line
        literals = [(i, m.group(1) or m.group(2) or "") for i, line in enumerate(text.splitlines(), 1)
                    for m in re.finditer(r'"([^"\n]*)"|\'([^\'\n]*)\'', line)]
    files = {n.rsplit("/", 1)[-1] for n in names if "." in n.rsplit("/", 1)[-1]}
    return [(line, value) for line, value in literals
            if value.strip("/") in names or (is_name(value) and value.rsplit("/", 1)[-1] in files)]


def test_artifact_names_are_spelled_only_where_they_are_declared():
    names = declared_names()
    seen = {train.RUN_METRICS, data.META, data.TOKENS_META, report.DECISION, common.figure(select.PARETO_FIGURE)}
    assert seen <= names, names  # the scan sees the declarations, the paths they compose and the figures' files
    found = [f"{path.relative_to(source.REPO)}:{line}: {value!r}"
             for path in [*sorted(source.PACKAGE_DIR.rglob("*.py")), *WORKFLOW_FILES, *TEST_FILES]
             if ARTIFACTS not in path.parents
             for line, value in spelled_out(path.read_text(encoding="utf-8"), names, path.suffix == ".py")]
    assert not found, "use the name from morph.core.artifacts instead:\n" + "\n".join(found)


def test_the_literal_check_sees_a_name_in_a_path_an_fstring_and_a_rule():
    meta, decision = data.META, report.DECISION
    names = {meta, decision}
    assert spelled_out(f"p = root / {meta!r}\nq = f'{{root}}/{meta}'\n", names, python=True) == [
        (1, meta), (2, f"/{meta}")]
    assert spelled_out(f'rule all:\n    input: "{decision}"\n', names, python=False) == [(2, decision)]
    assert spelled_out(f'"""A docstring naming {meta} in prose."""\n', names, python=True) == []
    # a declared file's bare name, or a path ending in it, is the declared name spelled again
    bare, elsewhere = decision.rsplit("/", 1)[-1], f"out/{meta}"
    assert spelled_out(f"a = {bare!r}\nb = {elsewhere!r}\n", names, python=True) == [(1, bare), (2, elsewhere)]
    assert spelled_out("a = 'my_runs.csv'\nb = '.json'\n", names, python=True) == []

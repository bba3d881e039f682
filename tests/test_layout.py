"""The package's layout shows the graph: no import cycles, and no stage family reaches into
another family's modules beyond the ones that family lists as public (its `PUBLIC`)."""
from __future__ import annotations

import ast

from morph.workflow import code_deps

FAMILIES = ("data", "train", "latency", "law", "select", "evaluate", "report", "workflow")


def all_modules() -> list[str]:
    out = []
    for path in sorted(code_deps.PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(code_deps.PACKAGE_DIR.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def public(family: str) -> tuple[str, ...]:
    tree = ast.parse(code_deps.module_file(f"morph.{family}").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "PUBLIC":
            return ast.literal_eval(node.value)
    raise AssertionError(f"morph/{family}/__init__.py declares no PUBLIC")


def family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in FAMILIES else None


def test_no_import_cycles():
    graph = {m: code_deps.direct_imports(m) - {m} for m in all_modules()}
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


def test_families_import_only_each_others_public_modules():
    offences = []
    for m in all_modules():
        own = family(m)
        for dep in code_deps.direct_imports(m):
            other = family(dep)
            if own and other and other != own and dep.split(".")[2] not in public(other):
                offences.append(f"{m} imports {dep}")
    assert not offences, offences


def test_each_family_is_a_folder_and_the_root_holds_only_shared_modules():
    root = sorted(p.stem for p in code_deps.PACKAGE_DIR.glob("*.py"))
    assert root == ["__init__", "cli", "errors", "figures", "io", "model", "process_lock", "shape"], root
    assert all((code_deps.PACKAGE_DIR / f / "__init__.py").is_file() for f in FAMILIES)

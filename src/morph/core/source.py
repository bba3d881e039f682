"""The morph source files a module runs: its imports, transitively, read from the source with `ast` (imports
inside functions count, since they run). The stage table takes each stage's code inputs from here, and a
training checkpoint's fingerprint takes training's, so no stage's code is listed by hand.

The walk stops at the experiment loader: every stage loads the experiment, but the loader only validates
the file and composes the sections. A stage's code takes the section modules it reads instead
(`workflow.code_inputs`), and what the experiment expands to reaches it as its command, outputs and params,
which both tools track already."""
from __future__ import annotations

import ast
import os
from functools import cache
from pathlib import Path

PACKAGE = "morph"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/morph: this module sits in its core/
REPO = PACKAGE_DIR.parents[1]
LOADER = "morph.core.experiment"


def module_file(name: str) -> Path | None:
    """The source file of a morph module or package, or None if `name` is not one."""
    parts = name.split(".")[1:]
    if not parts:
        return PACKAGE_DIR / "__init__.py"
    rel = Path(*parts)
    for candidate in (PACKAGE_DIR / rel.with_suffix(".py"), PACKAGE_DIR / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@cache
def direct_imports(name: str) -> frozenset[str]:
    """The morph modules one module imports anywhere in its body."""
    path = module_file(name)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = _package_of(name, path).split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and module_file(m))


@cache
def closure(*entries: str) -> tuple[str, ...]:
    """Every morph module the entries load, themselves and the packages around each included, sorted;
    the loader is neither entered nor listed."""
    seen, todo = set(), list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name == LOADER:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        todo += sorted(direct_imports(name))
    return tuple(sorted(seen))


@cache
def files(*entries: str) -> tuple[str, ...]:
    """closure(*entries) as repository-relative paths, as both orchestrators track them."""
    return tuple(sorted(os.path.relpath(module_file(m), REPO) for m in closure(*entries)))

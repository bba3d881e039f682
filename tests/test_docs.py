"""The docs' lists of stages and commands are the stage table's: each list in docs/architecture.md and README.md
sits in a marked block (`<!-- name -->` … `<!-- /name -->`), and each block is compared with `pipeline.STAGES`
and the CLI's commands, naming the file, the line, the list and what is missing or extra."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from morph.core import source
from morph.workflow.commands import COMMANDS, TOOLS
from morph.workflow.pipeline import STAGES

ARCHITECTURE = source.REPO / "docs" / "architecture.md"
README = source.REPO / "README.md"
NAMES = [s.name for s in STAGES]  # graph order
STAGE_COMMANDS = list(dict.fromkeys(s.command for s in STAGES))  # graph order; train_target runs `morph train`


def block(path: Path, marker: str) -> tuple[str, str]:
    """The text between `<!-- marker[: a note] -->` and `<!-- /marker -->`, and where it starts (file:line)."""
    text = path.read_text(encoding="utf-8")
    found = list(re.finditer(rf"<!-- {re.escape(marker)}(?::[^\n]*?)? -->(.*?)<!-- /{re.escape(marker)} -->", text,
                             re.S))
    where = f"{path.relative_to(source.REPO)} <!-- {marker} -->"
    assert len(found) == 1, f"{where}: {len(found)} such blocks, expected one"
    line = text.count("\n", 0, found[0].start()) + 1
    return found[0].group(1), f"{path.relative_to(source.REPO)}:{line} <!-- {marker} -->"


def differences(where: str, listed: list[str], declared: list[str], what: str, ordered: bool = True) -> list[str]:
    """What a doc's list gets wrong against the declared one: each entry missing, extra or repeated, then the
    order."""
    out = [f"{where}: missing {what} {n!r}" for n in declared if n not in listed]
    out += [f"{where}: lists {n!r}, which is no {what} (one of {declared})" for n in listed if n not in declared]
    out += [f"{where}: lists {n!r} {listed.count(n)} times" for n in dict.fromkeys(listed) if listed.count(n) > 1]
    if ordered and not out and listed != declared:
        out.append(f"{where}: lists the {what}s in the order {listed}, not the graph's {declared}")
    return out


def table_rows(text: str) -> list[list[str]]:
    """A markdown table's body rows, as their cells."""
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows[2:]]  # past the header and its rule


ROW_NAME = re.compile(r"([a-z_-]+) \(`morph ([a-z-]+)`\)")  # stage (`morph command`)


def test_the_graph_draws_every_stage_by_its_name():
    text, where = block(ARCHITECTURE, "stage-graph")
    drawn = set(re.findall(r"[a-z_]+", re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)))  # labels: no [...], no (...)
    assert not (problems := differences(where, sorted(drawn), sorted(set(NAMES)), "stage", ordered=False)), \
        "\n".join(problems)


def test_the_stage_table_has_a_row_per_stage_with_its_command_and_entry_module():
    """Each row: `name (`morph command`)` as the table declares them, the entry module first among its modules
    (`family/module.py`; a bare file name after it is in the same family's folder), and every module there."""
    text, where = block(ARCHITECTURE, "stage-table")
    listed, problems = [], []
    for cells in table_rows(text):
        named, modules = ROW_NAME.findall(cells[0]), re.findall(r"`([^`]+)`", cells[1])
        if not named or not modules:
            problems.append(f"{where}: row {cells[0]!r} reads no `name (`morph command`)` or names no module")
            continue
        for name, command in named:
            if name in TOOLS and command == name:  # a tool sharing the row of the stage it stands beside
                continue
            listed.append(name)
            stage = next((s for s in STAGES if s.name == name), None)
            if stage and command != stage.command:
                problems.append(f"{where}: {name} runs `morph {stage.command}`, not `morph {command}`")
            if stage and modules[0] != source.module_file(stage.module).relative_to(source.PACKAGE_DIR).as_posix():
                problems.append(f"{where}: the entry module of {name} is {stage.module}, not {modules[0]}")
        family = source.PACKAGE_DIR / modules[0].split("/")[0]
        problems += [f"{where}: the row of {cells[0]} names {m}, which src/morph does not hold" for m in modules
                     if not (source.PACKAGE_DIR / m).exists() and not (family / m).exists()]
    problems += differences(where, listed, NAMES, "stage")
    assert not problems, "\n".join(problems)


def test_what_each_stage_does_has_one_entry_per_stage_in_graph_order():
    text, where = block(ARCHITECTURE, "stage-bullets")
    listed = re.findall(r"^- \*\*([a-z_]+)\.\*\*", text, re.M)
    assert not (problems := differences(where, listed, NAMES, "stage")), "\n".join(problems)


@pytest.mark.parametrize("path,marker", [(README, "tool-commands"), (ARCHITECTURE, "tools")])
def test_the_tools_listed_are_the_clis_tools(path, marker):
    text, where = block(path, marker)
    listed = re.findall(r"`([a-z-]+)`", text)
    assert not (problems := differences(where, listed, list(TOOLS), "tool", ordered=False)), "\n".join(problems)


def test_the_readme_lists_every_stage_command_in_graph_order():
    text, where = block(README, "stage-commands")
    listed = [w.strip() for w in text.split(",")]
    assert not (problems := differences(where, listed, STAGE_COMMANDS, "stage command")), "\n".join(problems)


def test_every_command_the_docs_name_is_one():
    """`morph <word>` anywhere in these docs names a command the CLI has."""
    unknown = [f"{path.relative_to(source.REPO)}:{text.count(chr(10), 0, m.start()) + 1}: `morph {m[1]}`"
               for path in (README, ARCHITECTURE) for text in [path.read_text(encoding="utf-8")]
               for m in re.finditer(r"`morph ([a-z][a-z-]*)", text) if m[1] not in COMMANDS]
    assert not unknown, "no such command:\n" + "\n".join(unknown)


def test_a_list_missing_a_stage_or_naming_an_old_one_is_named():
    listed = [n for n in NAMES if n != "collect"] + ["latency-collect"]
    assert differences("README.md:1 <!-- x -->", listed, NAMES, "stage") == [
        "README.md:1 <!-- x -->: missing stage 'collect'",
        f"README.md:1 <!-- x -->: lists 'latency-collect', which is no stage (one of {NAMES})"]
    assert differences("w", list(reversed(NAMES)), NAMES, "stage")[0].startswith("w: lists the stages in the order")
    assert differences("w", list(reversed(NAMES)), NAMES, "stage", ordered=False) == []

"""What `snakemake --report` shows: each reported output under the category a reader looks for, its caption, and
the decision that the front page (report/workflow.rst) states. rules/common.smk marks the outputs. No stage
imports this module, so editing it reruns nothing."""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

from morph.core import artifacts
from morph.core.artifacts import report
from morph.core.artifacts.common import CAPTIONS, FIGURES
from morph.core.errors import MorphError

# Each family's artifacts module declares what the report shows of it (REPORTED: path -> category). The report's
# menu sorts categories by name, so Decision, the verdict and its evidence, comes first.
CATEGORY = {path: name for info in pkgutil.iter_modules(artifacts.__path__)
            for path, name in getattr(importlib.import_module(f"{artifacts.__name__}.{info.name}"), "REPORTED",
                                      {}).items()}
CATEGORIES = {name: tuple(p for p, n in CATEGORY.items() if n == name) for name in sorted(set(CATEGORY.values()))}
DECISION_KEY = "decision"  # the front page reads morph1b.json as {{ snakemake.config.decision }}


def declared(path: str, out_dir: str) -> str:
    """An output's path as core/artifacts declares it: without its experiment's folder."""
    return os.path.relpath(path, out_dir)


def reported(path: str, out_dir: str = ".") -> bool:
    """Whether `snakemake --report` shows this output: every figure, and the files the categories name."""
    path = declared(path, out_dir)
    return path in CATEGORY or path.startswith(f"{FIGURES}/")


def marking(path: str, basedir: str, out_dir: str = ".") -> dict:
    """The `report()` flag's arguments for an output: its category, its caption (report/captions/<name>.rst), and
    the caption's first sentence as a label, which the category's listing shows beside the file."""
    path = declared(path, out_dir)
    name = os.path.splitext(os.path.basename(path))[0]
    caption = os.path.join(basedir, CAPTIONS, f"{name}.rst")
    if not os.path.isfile(caption):
        raise MorphError(f"{caption}: no caption for {path}; write one (a few sentences of reST)")
    if path not in CATEGORY:
        raise MorphError(f"{path}: no report category; add it to CATEGORIES in {__name__}")
    return {"caption": caption, "category": CATEGORY[path],
            "labels": {"result": f"{os.path.basename(path)}: {gist(Path(caption).read_text(encoding='utf-8'))}"}}


def gist(caption: str) -> str:
    """A caption's first sentence as plain text: its words, without reST's quoting."""
    return re.split(r"(?<=\.)\s", " ".join(caption.replace("`", "").split()), maxsplit=1)[0]


class Decision(Mapping):
    """The experiment's morph1b.json, read when the report's front page is rendered; empty until the report stage
    has run."""

    def __init__(self, path: str = report.DECISION):
        self.path = Path(path)

    @cached_property
    def _record(self) -> dict:
        return json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}

    def __getitem__(self, key: str):
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)

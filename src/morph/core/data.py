"""The data section: what the sample draws, and the shards it is cut into."""
from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from morph.core.errors import MorphError
from morph.core.schema import rule

SHARD_PATTERN = r"(train|val)-\d{5}"  # what sample_shards names, as the orchestrators' wildcards match it


@dataclass(frozen=True)
class Data:
    # Explicit, so that adding a shape does not resample and retrain everything; checked
    # against the largest run's budget.
    train_tokens: int = rule(min=1)
    source: str = rule("fixture", choices=("fixture", "local", "hub"))
    paths: tuple[str, ...] = rule(["data/raw/fixture/*.jsonl.zst"])
    hub_id: str = rule("mlfoundations/dclm-baseline-1.0")
    hub_timeout_s: float = rule(20.0, min=0.0)
    val_tokens: int = rule(20000, min=1)
    chars_per_token: float = rule(3.0, above=0.0)
    margin: float = rule(1.2, min=1.0)
    allow_repeat: bool = rule(False)
    # Millions of characters per sample shard. Each shard is one tokenize job, so this sets how many
    # jobs can run at once and bounds each job's memory; the count follows from the params alone.
    shard_mb: float = rule(256.0, min=0.01)

    @property
    def sample_chars(self) -> dict[str, int]:
        """Characters each split draws: its token target x chars_per_token x margin."""
        per_token = self.chars_per_token * self.margin
        return {"train": math.ceil(self.train_tokens * per_token), "val": math.ceil(self.val_tokens * per_token)}

    @property
    def sample_shards(self) -> tuple[str, ...]:
        """Shard names (train-00000, ..., val-00000): a function of the params, so both graphs are static."""
        size = self.shard_mb * 1e6
        return tuple(f"{split}-{i:05d}" for split, chars in self.sample_chars.items()
                     for i in range(math.ceil(chars / size)))


def source_files(paths: Iterable[str], check: bool = True) -> list[str]:
    """data.paths' one glob rule, read by the sample, which reads the files, and by the graph, which tracks them:
    each pattern's matches in sorted order, `**` (a whole path part) spanning any depth of folders; every file
    once over all patterns, by its resolved path, so a symlink loop or a second link to a file repeats no
    document (a name with no link in it comes first, so adding a link changes nothing). `check` refuses a
    pattern that matches no file or a folder; the graph tracks what is there and leaves the refusal to the
    preflight, which runs before any job."""
    files: dict[str, str] = {}  # resolved path -> the name it is read by
    for pattern in paths:
        found = sorted(set(_glob(pattern)), key=lambda f: (os.path.realpath(f) != os.path.abspath(f), f))
        if check and not found:
            raise MorphError(f"data.paths: {pattern!r} matches no file (relative to {os.getcwd()}); fix the "
                             "pattern in the experiment file")
        if check and (folders := [f for f in found if not os.path.isfile(f)]):
            raise MorphError(f"data.paths: {pattern!r} matches {folders[0]}, which is not a file; make the pattern "
                             "match DCLM shards (*.jsonl.zst) only")
        for f in found:
            files.setdefault(os.path.realpath(f), f)
    return list(files.values())


def _glob(pattern: str) -> Iterator[str]:
    """glob.glob's matches, except that `**` walks each real folder once instead of following every link."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        yield from glob.glob(pattern)
        return
    i = parts.index("**")
    head = os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else "")
    tail = os.sep.join(parts[i + 1:]) or "*"
    for base in glob.glob(head) if head else [""]:
        for folder in _folders(base):
            yield from _glob(os.path.join(glob.escape(folder), tail))


def _folders(base: str) -> Iterator[str]:
    """`base` and every folder below it but hidden ones (as glob skips them), each real folder once: a link back
    up the tree (data/raw/x/loop -> ..) is not entered again, where glob would follow it until the OS stops it."""
    seen, todo = set(), [base]
    while todo:
        folder = todo.pop()
        real = os.path.realpath(folder or os.curdir)
        if real in seen or not os.path.isdir(real):
            continue
        seen.add(real)
        yield folder
        try:
            names = sorted(os.listdir(folder or os.curdir), reverse=True)  # popped in sorted order
        except OSError:  # unreadable: glob skips it too
            continue
        todo.extend(os.path.join(folder, n) for n in names if not n.startswith("."))

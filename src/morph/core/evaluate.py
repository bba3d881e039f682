"""The evaluate section: which zero-shot tasks score the top-k and the baseline, and the paired bootstrap."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.schema import rule
from morph.core.tasks import default_tasks, task_folders


def _task_rule(value: str) -> str | None:
    known = sorted(task_folders())
    return None if value in known else f"is not a known task; known tasks: {', '.join(known)}"


@dataclass(frozen=True)
class Evaluate:
    tasks: tuple[str, ...] = rule(default_tasks(), min_len=1, each={"check": _task_rule})
    # A seeded random subset of this many items per task (the same ids for every model); null: all.
    limit: int | None = rule(None, min=1)
    batch_size: int = rule(16, min=1)
    threads: int = rule(1, min=1)
    # Paired bootstrap over the scored items: the accuracy intervals and the noise test of the decision.
    bootstrap: int = rule(2000, min=1)
    confidence: float = rule(0.95, min=0.0, max=1.0)

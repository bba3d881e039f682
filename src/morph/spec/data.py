"""The data section: what the sample draws, and the shards it is cut into."""
from __future__ import annotations

import math
from dataclasses import dataclass

from morph.spec.schema import rule

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

"""The latency section: where, in what dtype and how each shape's generation is timed."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.backends import BACKENDS
from morph.core.schema import rule


@dataclass(frozen=True)
class Latency:
    device: str = rule("cpu", choices=("cpu", "cuda"))
    dtype: str = rule("auto", choices=("auto", "float32", "bfloat16", "float16"))
    backends: tuple[str, ...] = rule(["hf"], min_len=1, each={"choices": BACKENDS})
    prompt_len: int = rule(128, min=1)
    new_tokens: int = rule(256, min=1)
    warmup: int = rule(1, min=0)
    repeats: int = rule(5, min=1)
    ttft: bool = rule(True)
    batch_sizes: tuple[int, ...] = rule([1], each={"min": 1})
    threads: int = rule(2, min=1)
    # A timing is disturbed when other processes kept busy more than disturbed_at of the cores it leaves free
    # (cpu count - threads, at least one), just before or while it ran. Then: warn (record it and say so), retry
    # (time again, up to `retries` more times, keeping the least disturbed attempt), or refuse (stop with an error).
    on_disturbed: str = rule("retry", choices=("warn", "retry", "refuse"))
    retries: int = rule(2, min=1)
    disturbed_at: float = rule(0.5, above=0, max=1)

    @property
    def timed_dtype(self) -> str:
        """The dtype timing runs in: auto is bfloat16 on a GPU, float32 on a CPU."""
        return self.dtype if self.dtype != "auto" else ("bfloat16" if self.device == "cuda" else "float32")

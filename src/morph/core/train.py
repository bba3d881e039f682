"""The train section: optimisation, precision and how the ranks split the batch."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.schema import rule


def _below_one(value: float) -> str | None:
    return None if value < 1 else "must be below 1 (at 1, Adam never updates that moment)"


@dataclass(frozen=True)
class Train:
    batch_size: int = rule(16, min=1)
    lr: float = rule(3e-3, above=0.0)  # 0 would save an untrained model as if trained
    min_lr_ratio: float = rule(0.1, min=0.0, max=1.0)
    warmup_frac: float = rule(0.05, min=0.0, max=0.5)
    weight_decay: float = rule(0.1, min=0.0)
    beta1: float = rule(0.9, min=0.0, check=_below_one)
    beta2: float = rule(0.95, min=0.0, check=_below_one)
    grad_clip: float = rule(1.0, min=0.0)
    ema_decay: float = rule(0.98, min=0.0, max=1.0)
    val_batches: int = rule(8, min=1)
    checkpoint_every: int = rule(50, min=1)
    precision: str = rule("auto", choices=("auto", "32-true", "bf16-mixed", "16-mixed"))
    accelerator: str = rule("auto", choices=("auto", "cpu", "gpu"))
    devices: int = rule(1, min=1)  # per node; the ranks are devices x num_nodes
    num_nodes: int = rule(1, min=1)
    strategy: str = rule("auto", choices=("auto", "ddp", "fsdp"))
    # Sequences per forward pass on one rank; batch_size (the global batch) = micro x accumulation x ranks.
    # Unset: the rank's whole share of the batch in one pass.
    micro_batch_size: int | None = rule(None, min=1)
    compile: bool = rule(False)
    fused_adamw: bool = rule(False)
    log_every: int = rule(10, min=1)  # steps between reads of the loss (each read waits for the device)
    # The loss curve's CSV is always written (the graph reads it); tensorboard adds event files beside it.
    logger: str = rule("csv", choices=("csv", "tensorboard"))
    threads: int = rule(1, min=1)

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def rank_batch(self) -> int:
        return self.batch_size // self.world_size

    @property
    def micro_batch(self) -> int:
        return self.micro_batch_size or self.rank_batch

    @property
    def accumulation(self) -> int:
        """Micro batches per optimiser step on each rank."""
        return self.rank_batch // self.micro_batch

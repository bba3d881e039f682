"""The LightningModule: next-token loss, AdamW with warmup + cosine, EMA train loss, a NaN guard."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import FSDPStrategy, ParallelStrategy

from morph.core.errors import MorphError
from morph.train.batches import IGNORE


@dataclass(frozen=True)
class Optim:
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    warmup_steps: int
    total_steps: int
    min_lr_ratio: float
    ema_decay: float
    grad_clip: float
    fused: bool = False

    @classmethod
    def from_params(cls, train, total_steps: int) -> Optim:
        """From the experiment's train section."""
        return cls(lr=train.lr, betas=(train.beta1, train.beta2), weight_decay=train.weight_decay,
                   warmup_steps=max(1, round(train.warmup_frac * total_steps)), total_steps=total_steps,
                   min_lr_ratio=train.min_lr_ratio, ema_decay=train.ema_decay, grad_clip=train.grad_clip,
                   fused=train.fused_adamw)


def lr_factor(step: int, o: Optim) -> float:
    """Linear warmup to 1, then cosine decay to min_lr_ratio at the last step."""
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    span = max(1, o.total_steps - 1 - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def no_decay_names(model) -> frozenset[str]:
    """Parameters left out of weight decay: every one that is not a matrix (norm gains, biases)."""
    return frozenset(n for n, p in model.named_parameters() if p.ndim < 2)


def unwrapped_name(name: str) -> str:
    """A parameter's name as in the unwrapped model: each FSDP unit inserts its wrapper's prefix."""
    return name.replace("_fsdp_wrapped_module.", "")


# Throughput is timed after each session's first steps (compilation, allocator growth, kernel selection).
WARMUP_STEPS = 2


class DivergedError(MorphError):
    """The training loss became NaN or infinite."""


class CausalLM(L.LightningModule):
    """One training item is one optimiser step of this rank: micro batches whose gradients accumulate, each loss
    scaled by the whole batch's target count, so the ranks' averaged gradient is the one-device gradient."""

    def __init__(self, model, optim: Optim, fingerprint: str, compile: bool = False, log_every: int = 10):
        super().__init__()
        self.model, self.optim, self.fingerprint, self.log_every = model, optim, fingerprint, log_every
        self.automatic_optimization = False  # accumulation is spelled out in training_step
        # Compile the bound forward, not the module, so state_dict keys stay those of the HF model.
        self._forward = torch.compile(model.forward) if compile else model.forward
        # Bias-corrected EMA of the training loss. Each rank keeps, on its device, the EMA of its share of the
        # loss; the EMA being linear, the ranks' sum is the EMA of the whole loss, read every log_every steps.
        self.ema_sum, self.ema_weight = None, 0.0
        self.train_loss_ema = math.nan  # the whole EMA as last read
        self.restored_ema = 0.0  # the whole-run EMA sum from a checkpoint, carried by rank 0
        # Training-loop seconds over all sessions (restored on resume): wall clock, and CPU time of this process,
        # which on a shared machine tells the loop's own cost from the time the neighbours held the cores.
        self.train_s, self.train_cpu_s = 0.0, 0.0
        # The steady part of those seconds and its steps: past each session's warm-up, without checkpoint writes
        # (PeriodicCheckpoint adds each write's seconds to checkpoint_s).
        self.steady_s, self.steady_steps, self.checkpoint_s = 0.0, 0, 0.0
        self.val_sum, self.val_count = 0.0, 0
        # Chosen by name now, while every parameter has its shape: FSDP flattens them into 1-D shards before
        # the optimiser is built.
        self.no_decay = no_decay_names(model)

    def _loss_sum(self, inputs, targets):
        logits = self._forward(input_ids=inputs, use_cache=False).logits  # training builds no KV cache
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                               reduction="sum")

    def training_step(self, batch, batch_idx):
        inputs, targets, count = batch
        opt, sched = self.optimizers(), self.lr_schedulers()
        strategy = self.trainer.strategy
        world = self.trainer.world_size
        share = torch.zeros((), device=self.device)  # this rank's part of the step's mean loss
        for i in range(len(inputs)):
            # Only the last micro batch's backward all-reduces the accumulated gradients.
            sync = i == len(inputs) - 1 or not isinstance(strategy, ParallelStrategy)
            with contextlib.nullcontext() if sync else strategy.block_backward_sync():
                loss = self._loss_sum(inputs[i], targets[i]) / count
                self.manual_backward(loss * world)  # DDP averages over ranks; the sum over ranks is wanted
            share += loss.detach()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        d = self.optim.ema_decay
        self.ema_sum.mul_(d).add_(share, alpha=1 - d)  # on the device: no wait for it here
        self.ema_weight = d * self.ema_weight + (1 - d)
        self._session_steps += 1
        if self._session_steps == WARMUP_STEPS:
            self._steady_start = self.synced_clock(), self.global_step, self.checkpoint_s
        step = self.global_step - 1  # the step just taken
        if (step + 1) % self.log_every == 0 or step + 1 == self.optim.total_steps:
            self._log_loss(step, share)

    def on_before_optimizer_step(self, optimizer):
        # Here, inside the optimiser step, gradients are already unscaled under 16-mixed precision.
        if not self.optim.grad_clip:
            return
        if isinstance(self.trainer.strategy, FSDPStrategy):
            # Lightning's FSDP precision plugin refuses norm clipping: only the root FSDP unit sees every
            # rank's shard of the gradient, so it alone computes the whole norm.
            self.trainer.strategy.model.clip_grad_norm_(self.optim.grad_clip)
        else:
            self.clip_gradients(optimizer, gradient_clip_val=self.optim.grad_clip, gradient_clip_algorithm="norm")

    def _whole(self, *values) -> list[float]:
        """Sum each rank's shares: the whole-batch values, the same on every rank (one device wait)."""
        summed = self.trainer.strategy.reduce(torch.stack(values).double(), reduce_op="sum")
        return summed.tolist()

    def _log_loss(self, step: int, share):
        loss, ema = self._whole(share, self.ema_sum)
        if not (math.isfinite(loss) and math.isfinite(ema)):
            raise DivergedError(
                f"training loss is {loss} at step {step} (read every train.log_every={self.log_every} steps); "
                f"the run diverged (lower train.lr={self.optim.lr} or raise train.warmup_frac)"
            )
        self.train_loss_ema = ema / self.ema_weight
        # Written and flushed here, before this step's checkpoint, so a killed run keeps its curve.
        for logger in self.loggers:
            logger.log_metrics({"train_loss": loss, "train_loss_ema": self.train_loss_ema,
                                "lr": self.lr_schedulers().get_last_lr()[0]}, step=step)
            logger.save()

    def _session(self) -> tuple[float, float]:
        """(wall, CPU) seconds of this session's training loop so far."""
        if not hasattr(self, "_session_start"):
            return 0.0, 0.0
        wall, cpu = self._session_start
        return time.perf_counter() - wall, time.process_time() - cpu

    def synced_clock(self) -> float:
        """perf_counter once the device has run everything queued so far."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _steady(self) -> tuple[float, int]:
        """(seconds, steps) of this session's steady part so far."""
        if self._steady_start is None:
            return 0.0, 0
        wall, step, checkpoints = self._steady_start
        return self.synced_clock() - wall - (self.checkpoint_s - checkpoints), self.global_step - step

    def on_train_start(self):
        self._session_start = time.perf_counter(), time.process_time()
        self._session_steps, self._steady_start = 0, None
        first = self.restored_ema if self.global_rank == 0 else 0.0
        self.ema_sum = torch.tensor(first, dtype=torch.float64, device=self.device)

    def on_train_end(self):
        wall, cpu = self._session()
        self.train_s, self.train_cpu_s = self.train_s + wall, self.train_cpu_s + cpu
        seconds, steps = self._steady()
        self.steady_s, self.steady_steps = self.steady_s + seconds, self.steady_steps + steps
        del self._session_start

    def on_validation_epoch_start(self):
        self._val = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        self._val += torch.stack([self._loss_sum(inputs, targets).double(), (targets != IGNORE).sum().double()])

    def on_validation_epoch_end(self):
        # Sum and count over every rank's share of the windows: the one-device held-out loss.
        self.val_sum, count = self._whole(*self._val)
        self.val_count = int(count)

    @property
    def val_loss(self) -> float:
        return self.val_sum / self.val_count

    def configure_optimizers(self):
        o = self.optim
        named = [(unwrapped_name(n), p) for n, p in self.model.named_parameters()]
        decay = [p for n, p in named if n not in self.no_decay]
        keep = [p for n, p in named if n in self.no_decay]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": keep, "weight_decay": 0.0}],
            lr=o.lr, betas=o.betas, fused=o.fused or None,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, o))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint):
        # Every rank comes here (the strategy then lets rank 0 write), so the sum over ranks is a collective.
        (ema,) = self._whole(self.ema_sum) if self.ema_sum is not None else (self.restored_ema,)
        wall, cpu = self._session()
        seconds, steps = self._steady() if hasattr(self, "_session_start") else (0.0, 0)
        checkpoint["morph"] = {"fingerprint": self.fingerprint, "ema_sum": ema,
                               "ema_weight": self.ema_weight, "train_s": self.train_s + wall,
                               "train_cpu_s": self.train_cpu_s + cpu, "steady_s": self.steady_s + seconds,
                               "steady_steps": self.steady_steps + steps}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint["morph"]
        self.restored_ema, self.ema_weight = state["ema_sum"], state["ema_weight"]
        self.train_s, self.train_cpu_s = state["train_s"], state["train_cpu_s"]
        self.steady_s, self.steady_steps = state["steady_s"], state["steady_steps"]

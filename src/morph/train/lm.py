"""The LightningModule: next-token loss, AdamW with warmup + cosine, EMA train loss, a NaN guard."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F

from morph.errors import MorphError
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

    @classmethod
    def from_params(cls, train, total_steps: int) -> "Optim":
        """From the experiment's train section."""
        return cls(lr=train.lr, betas=(train.beta1, train.beta2), weight_decay=train.weight_decay,
                   warmup_steps=max(1, round(train.warmup_frac * total_steps)), total_steps=total_steps,
                   min_lr_ratio=train.min_lr_ratio, ema_decay=train.ema_decay)


def lr_factor(step: int, o: Optim) -> float:
    """Linear warmup to 1, then cosine decay to min_lr_ratio at the last step."""
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    span = max(1, o.total_steps - 1 - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class DivergedError(MorphError):
    """The training loss became NaN or infinite."""


class CausalLM(L.LightningModule):
    def __init__(self, model, optim: Optim, fingerprint: str, compile: bool = False, log_every: int = 10):
        super().__init__()
        self.model, self.optim, self.fingerprint, self.log_every = model, optim, fingerprint, log_every
        # Compile the bound forward, not the module, so state_dict keys stay those of the HF model.
        self._forward = torch.compile(model.forward) if compile else model.forward
        self.ema_sum, self.ema_weight = 0.0, 0.0  # bias-corrected EMA of the training loss
        self.train_s = 0.0  # training-loop seconds over all sessions (restored on resume)
        self.val_sum, self.val_count = 0.0, 0

    def _loss_sum(self, inputs, targets):
        logits = self._forward(input_ids=inputs).logits
        loss_sum = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                                   reduction="sum")
        return loss_sum, (targets != IGNORE).sum()

    def training_step(self, batch, batch_idx):
        loss_sum, count = self._loss_sum(*batch)
        loss = loss_sum / count
        value = loss.item()
        if not math.isfinite(value):
            raise DivergedError(
                f"training loss is {value} at step {self.global_step}; the run diverged "
                f"(lower train.lr={self.optim.lr} or raise train.warmup_frac)"
            )
        d = self.optim.ema_decay
        self.ema_sum, self.ema_weight = d * self.ema_sum + (1 - d) * value, d * self.ema_weight + (1 - d)
        self.log("train_loss", loss, prog_bar=True, logger=False)
        step = self.global_step
        if self.logger is not None and ((step + 1) % self.log_every == 0 or step + 1 == self.optim.total_steps):
            # Written and flushed here, before this step's checkpoint, so a killed run keeps its curve.
            self.logger.log_metrics({"train_loss": value, "train_loss_ema": self.train_loss_ema,
                                     "lr": self.lr_schedulers().get_last_lr()[0]}, step=step)
            self.logger.save()
        return loss

    @property
    def train_loss_ema(self) -> float:
        return self.ema_sum / self.ema_weight

    def on_train_start(self):
        self._session_start = time.perf_counter()

    def on_train_end(self):
        self.train_s += time.perf_counter() - self._session_start
        del self._session_start

    def on_validation_epoch_start(self):
        self.val_sum, self.val_count = 0.0, 0

    def validation_step(self, batch, batch_idx):
        loss_sum, count = self._loss_sum(*batch)
        self.val_sum += loss_sum.item()
        self.val_count += int(count)

    @property
    def val_loss(self) -> float:
        return self.val_sum / self.val_count

    def configure_optimizers(self):
        o = self.optim
        # Weight decay on matrices only; norm gains are left alone.
        decay = [p for p in self.model.parameters() if p.ndim >= 2]
        keep = [p for p in self.model.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": keep, "weight_decay": 0.0}],
            lr=o.lr, betas=o.betas,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, o))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint):
        elapsed = time.perf_counter() - self._session_start if hasattr(self, "_session_start") else 0.0
        checkpoint["morph"] = {"fingerprint": self.fingerprint, "ema_sum": self.ema_sum,
                               "ema_weight": self.ema_weight, "train_s": self.train_s + elapsed}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint["morph"]
        self.ema_sum, self.ema_weight, self.train_s = state["ema_sum"], state["ema_weight"], state["train_s"]

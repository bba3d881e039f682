"""Lightning plumbing for resumable runs: atomic periodic checkpoints, a progress bar in steps, a loss curve that
survives resume."""
from __future__ import annotations

import csv
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from morph.core.artifacts.train import CSV_LOG
from morph.core.errors import MorphError
from morph.core.io import atomic_path

# The loss curve of earlier sessions while a resumed run trains; beside logs/, which CSVLogger clears.
EARLIER = "curve-before-resume.csv"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a sibling temp file and rename it, so a SIGKILL never leaves half a file; read it
    mapped from the file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            try:
                torch.save(checkpoint, tmp)
            except RuntimeError as err:  # torch's writer says only "unexpected pos" when a write falls short
                raise MorphError(f"{path}: the checkpoint could not be written whole ({str(err).splitlines()[0]}); "
                                 "a full disk or a file-size limit (ulimit -f)? Free space or raise the limit, "
                                 "then rerun: the run resumes from its last whole checkpoint") from None

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        # Every rank reads the whole checkpoint on resume: mapped from the file, its tensors are the page cache
        # the ranks share, each read as its values are copied to the device, not a private copy per rank.
        return torch.load(path, map_location="cpu", mmap=True, weights_only=False)


class PeriodicCheckpoint(ModelCheckpoint):
    """Checkpoints every n steps only: not again when training ends, since a finished run writes its model and
    deletes its checkpoint (at the paper's scale a last checkpoint is tens of GB written for nothing). Each
    write's seconds go to the module's `checkpoint_s`, which its throughput leaves out."""

    def __init__(self, every_n_train_steps: int, **kwargs):
        super().__init__(every_n_train_steps=every_n_train_steps, **kwargs)
        self.every = every_n_train_steps

    def on_train_batch_end(self, trainer, pl_module, *args, **kwargs):
        if trainer.global_step % self.every:
            return super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        start = pl_module.synced_clock()
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        pl_module.checkpoint_s += pl_module.synced_clock() - start

    def on_train_end(self, trainer, pl_module):
        pass


class StepProgressBar(TQDMProgressBar):
    """The training data has no length (see batches.TrainSteps), so show progress against max_steps."""

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        self.train_progress_bar.reset(total=trainer.max_steps)
        self.train_progress_bar.update(trainer.global_step)


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict]) -> None:
    fields = sorted({k for r in rows for k in r})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def keep_curve_before(log_dir: Path, start: int | None) -> None:
    """Before a run starts: on resume, set the loss curve up to `start` aside (CSVLogger would delete it);
    on a fresh start, drop any old curve."""
    curve, kept = log_dir / CSV_LOG, log_dir.parent / EARLIER
    if start is None:
        curve.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
        return
    rows = [r for r in _rows(kept) + _rows(curve) if int(r["step"]) < start]
    if rows:
        _write_rows(kept, rows)
    curve.unlink(missing_ok=True)


def join_curve(log_dir: Path) -> None:
    """After training: one metrics.csv holding every session's rows."""
    kept = log_dir.parent / EARLIER
    if kept.exists():
        _write_rows(log_dir / CSV_LOG, _rows(kept) + _rows(log_dir / CSV_LOG))
        kept.unlink()

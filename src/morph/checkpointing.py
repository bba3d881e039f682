"""Lightning plumbing for resumable runs: atomic checkpoint files and a progress bar counted in steps."""
from __future__ import annotations

import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a sibling temp file and rename it, so a SIGKILL never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class StepProgressBar(TQDMProgressBar):
    """The training data has no length (see batches.TrainSteps), so show progress against max_steps."""

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        self.train_progress_bar.reset(total=trainer.max_steps)
        self.train_progress_bar.update(trainer.global_step)

"""One trainer per run directory: a second `morph train` on the same run is refused, naming the first."""
from __future__ import annotations

from pathlib import Path

from morph.core import process_lock


def hold(run_dir: Path):
    """Take <run>/.train.lock for this process's lifetime or refuse; keep the returned file referenced."""
    return process_lock.hold(
        run_dir / ".train.lock",
        lambda pid: f"{run_dir}: another `morph train` (pid {pid}) is training this run; wait for it to "
                    f"finish or stop it (kill {pid}), then rerun")

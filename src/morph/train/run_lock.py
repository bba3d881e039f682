"""One trainer per run directory: a second `morph train` on the same run is refused, naming the first.

An advisory lock on <run>/.train.lock, held for the trainer's lifetime and released by the kernel when
it exits (a kill -9 included), so a stale lock never blocks a rerun."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from morph.errors import MorphError


def hold(run_dir: Path):
    """Take the run's lock or refuse; returns the open file that holds it (keep it referenced)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".train.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise MorphError(f"{run_dir}: another `morph train` (pid {holder}) is training this run; wait for it to "
                         f"finish or stop it (kill {holder}), then rerun") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f

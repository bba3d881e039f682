"""A lock held for a process's lifetime: an advisory flock on a file that records the holder's pid.

The kernel releases it when the holder exits (a kill -9 included), so a stale lock never blocks a rerun."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from morph.core.errors import MorphError


def hold(path: Path, refusal: Callable[[str], str]):
    """Take the lock at `path` or raise MorphError(refusal(holder's pid)); returns the open file that holds
    it (keep it referenced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise MorphError(refusal(holder)) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f

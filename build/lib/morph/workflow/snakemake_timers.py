"""Snakemake's job-rate limiter (its default --max-jobs-per-timespan 100/1s) arms a 1 s threading.Timer on
each scheduling pass that starts jobs. The timer is not a daemon thread, so the interpreter waits for the
last one before it exits: up to a second after every run, serial time that a `-j2` run pays as `-j1` does.
The rules cancel what is pending once the workflow has ended (onsuccess, onerror), when nothing is left to
schedule. A shorter timespan is no way out: with 10/100ms Snakemake finished its jobs and never exited."""
from __future__ import annotations

import threading


def cancel_pending() -> None:
    """Cancel every threading.Timer of this process that has not fired."""
    for t in threading.enumerate():
        if isinstance(t, threading.Timer) and not t.finished.is_set():
            t.cancel()

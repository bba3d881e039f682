"""What other processes cost a timing: the CPU cores they kept busy, read from /proc/stat less this process's own
CPU time. A load average counts runnable tasks, this one among them, and lags by a minute; busy cores over the
very interval timed say whether a neighbour held a core this timing needed."""
from __future__ import annotations

import os
import time
from pathlib import Path

STAT = Path("/proc/stat")


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, or None where there is no /proc/stat."""
    try:
        fields = STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[1:9])
    busy = user + nice + system + irq + softirq + steal  # steal: a hypervisor gave our vCPU to another guest
    return busy, busy + idle + iowait


class Mark:
    """A point in time from which `others_busy_cores` is read."""

    def __init__(self):
        self.ticks = _machine_ticks()
        self.own = sum(os.times()[:2])


def others_busy_cores(since: Mark) -> float | None:
    """Cores other processes kept busy on average since the mark (0 to the CPU count), or None if unknown."""
    now = Mark()
    if since.ticks is None or now.ticks is None:
        return None
    busy, total = now.ticks[0] - since.ticks[0], now.ticks[1] - since.ticks[1]
    if total <= 0:
        return None
    cpus = os.cpu_count() or 1
    own = (now.own - since.own) * os.sysconf("SC_CLK_TCK")
    return max(busy - own, 0) / total * cpus


def busy_over(seconds: float) -> float | None:
    """Others' busy cores over a short wait before timing starts."""
    mark = Mark()
    time.sleep(seconds)
    return others_busy_cores(mark)

"""Progress a person can read while the graph runs.

Snakemake's console says only "12 of 62 steps (19%) done"; what a job is doing goes to its log
(`logs/<rule>/<key>.log`), where training and lm-eval write tqdm bars. While jobs run, the main Snakemake process
prints every `MORPH_PROGRESS_S` seconds (30 unless set; 0 turns it off), to stderr, one line per running job
(its bar's last state, read from the end of its log, its time so far and an estimate of its time left) and one
line for the graph (jobs done, running, and the time left).

The estimates come from the benchmark files Snakemake writes as each job finishes (column `s`, wall seconds), this
run's and earlier runs' of the jobs in the graph: per rule, a job's seconds are fitted as a + b * cost, where a
training job's cost is its training FLOPs (its shape and tokens in the experiment), so a large run left is not
judged by the small ones finished first; any other job costs 1 (its rule's mean). The graph's time left is the
work left (each job's seconds times the cores it holds, every core for a timing job) over the cores, and never
less than the longest job left. Jobs of a rule never timed are counted, not guessed.

Everything but `Monitor` works on text and numbers. `Monitor` reads Snakemake's plan, its finished jobs and its
scheduler's running set from a daemon thread; rules/common.smk starts it at onstart and stops it at onsuccess and
onerror (neither of which a dry run, `--report` or `--no-hooks` calls).
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

INTERVAL_ENV = "MORPH_PROGRESS_S"
INTERVAL_S = 30.0
POLL_S = 2.0  # how often the running jobs are sampled: a job's time so far is known to within this
TAIL_BYTES = 64 * 1024  # of a log read for its last bar; lm-eval's warnings come between its bar's updates
PREFIX = "progress: "

_CLOCK = r"(?:\d+:)?\d+:\d\d"
_NUMBER = r"[\d.]+[kMGTPEZY]?"
# tqdm's default bar, and Lightning's (the same up to the rate): "desc:  45%|####5     | 90/200 [00:10<00:12, 8.9it/s]"
_BAR = re.compile(rf"(?:(?P<desc>.*?):\s*)?\d+%\|[^|]*\|\s*(?P<n>{_NUMBER})/(?P<total>{_NUMBER})\s*"
                  rf"\[(?P<elapsed>{_CLOCK})<(?P<remaining>{_CLOCK}|\?)")
# A bar without a total: "desc: 90it [00:10, 8.9it/s]"
_COUNT = re.compile(rf"(?:(?P<desc>.*?):\s*)?(?P<n>{_NUMBER})[^\s\[]* \[(?P<elapsed>{_CLOCK})[,\]]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}


@dataclass(frozen=True)
class Bar:
    """The last state a tqdm bar wrote."""
    desc: str
    n: float
    total: float | None  # None: a bar without a total
    elapsed_s: float
    remaining_s: float | None  # tqdm's estimate; None where it has none yet ("?") or no total

    @property
    def fraction(self) -> float | None:
        return self.n / self.total if self.total else None


def seconds_of(clock: str) -> float | None:
    """tqdm's "12:03" or "1:02:03" in seconds; None for "?"."""
    if not re.fullmatch(_CLOCK, clock):
        return None
    value = 0
    for part in clock.split(":"):
        value = value * 60 + int(part)
    return float(value)


def _number(text: str) -> float:
    return float(text[:-1]) * _SCALE[text[-1]] if text[-1] in _SCALE else float(text)


def parse_bar(segment: str) -> Bar | None:
    """One tqdm update (the text between two carriage returns) as a Bar, or None if it is not one."""
    segment = _ANSI.sub("", segment).strip()
    if m := _BAR.match(segment):
        total = _number(m["total"])
        return Bar((m["desc"] or "").strip(), _number(m["n"]), total or None, seconds_of(m["elapsed"]),
                   seconds_of(m["remaining"]))
    if m := _COUNT.match(segment):
        return Bar((m["desc"] or "").strip(), _number(m["n"]), None, seconds_of(m["elapsed"]), None)
    return None


def last_bar(text: str) -> Bar | None:
    """The last bar state in a log's text: tqdm separates its updates with "\\r", other output with "\\n"."""
    for segment in reversed(re.split(r"[\r\n]", text)):
        if bar := parse_bar(segment):
            return bar
    return None


def tail(path: str | Path, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes of a file as text ("" if it is missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def benchmark_seconds(text: str) -> float | None:
    """The wall seconds in a Snakemake benchmark file (its column `s`; the mean where it repeated the job)."""
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    if len(rows) < 2 or "s" not in rows[0]:
        return None
    col = rows[0].index("s")
    try:
        values = [float(r[col]) for r in rows[1:]]
    except (IndexError, ValueError):
        return None
    return sum(values) / len(values)


@dataclass(frozen=True)
class Fit:
    """A rule's job seconds as intercept + slope * cost, from its finished jobs."""
    intercept: float
    slope: float
    jobs: int

    def seconds(self, cost: float) -> float:
        return self.intercept + self.slope * cost


def fit(timings: Iterable[tuple[float, float]]) -> Fit | None:
    """Least squares of seconds on cost over (cost, seconds) pairs, both coefficients kept >= 0: a fixed cost per
    job (start-up, saving) and a cost per FLOP. One distinct cost fixes no line: seconds are then proportional to
    cost (the mean, for jobs of cost 1); a line with a negative intercept goes through the origin instead, one
    with a negative slope is flat (the mean)."""
    pairs = [(float(c), float(s)) for c, s in timings]
    if not pairs:
        return None
    n = len(pairs)
    mean_c = sum(c for c, _ in pairs) / n
    mean_s = sum(s for _, s in pairs) / n
    var = sum((c - mean_c) ** 2 for c, _ in pairs)
    if var <= 1e-12 * max(mean_c * mean_c, 1e-300) * n:
        return Fit(0.0, mean_s / mean_c if mean_c else 0.0, n) if mean_c else Fit(mean_s, 0.0, n)
    slope = sum((c - mean_c) * (s - mean_s) for c, s in pairs) / var
    intercept = mean_s - slope * mean_c
    if slope < 0:
        return Fit(mean_s, 0.0, n)
    if intercept < 0:
        return Fit(0.0, sum(c * s for c, s in pairs) / sum(c * c for c, _ in pairs), n)
    return Fit(intercept, slope, n)


def fits(history: Iterable[tuple[str, float, float]]) -> dict[str, Fit]:
    """Per rule, the Fit of its finished jobs' (rule, cost, seconds)."""
    by_rule: dict[str, list[tuple[float, float]]] = {}
    for rule, cost, seconds in history:
        by_rule.setdefault(rule, []).append((cost, seconds))
    return {rule: f for rule, pairs in by_rule.items() if (f := fit(pairs))}


@dataclass(frozen=True)
class Planned:
    """A job of this run."""
    rule: str
    key: str  # its wildcards' values ("" for a singleton)
    cost: float = 1.0  # training FLOPs for a training run; 1 for any other job
    width: float = 1.0  # the cores it holds: its threads, or every core for a job that runs alone

    @property
    def name(self) -> str:
        return f"{self.rule}[{self.key}]" if self.key else self.rule


def expected_s(job: Planned, by_rule: Mapping[str, Fit]) -> float | None:
    f = by_rule.get(job.rule)
    return None if f is None else max(0.0, f.seconds(job.cost))


def left_s(job: Planned, elapsed: float, bar: Bar | None, by_rule: Mapping[str, Fit]) -> float | None:
    """A running job's time left: its expected seconds less its time so far, or its bar's own estimate where
    that is longer (the bar knows this job's pace; the fit knows what comes after the bar); None if neither."""
    expected = expected_s(job, by_rule)
    guesses = [g for g in (None if expected is None else expected - elapsed, bar.remaining_s if bar else None)
               if g is not None]
    return max(0.0, *guesses) if guesses else None


@dataclass(frozen=True)
class Outlook:
    done: int
    total: int
    running: int
    eta_s: float | None  # None: no job left has an estimate
    untimed: dict[str, int]  # rule -> jobs left that no finished job of theirs lets us estimate


def outlook(waiting: Iterable[Planned], running: Iterable[tuple[Planned, float | None]], done: int, total: int,
            by_rule: Mapping[str, Fit], slots: float) -> Outlook:
    """The graph's time left: the work left (seconds x cores held) over the cores, at least the longest job."""
    running = list(running)
    left = [(job, expected_s(job, by_rule)) for job in waiting] + running
    known = [(job, s) for job, s in left if s is not None]
    untimed = Counter(job.rule for job, s in left if s is None)
    if known:
        work = sum(s * min(job.width, slots) for job, s in known)
        eta = max(work / slots, max(s for _, s in known))
    else:
        eta = None if untimed else 0.0
    return Outlook(done, total, len(running), eta, dict(untimed))


def clock(seconds: float) -> str:
    """0:45, 12:03, 1:02:03."""
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def about(seconds: float) -> str:
    """A duration to the minute: "<1 min", "~8 min", "~2 h 05 min"."""
    minutes = int(round(seconds / 60))
    if minutes < 1:
        return "<1 min"
    h, m = divmod(minutes, 60)
    return f"~{h} h {m:02d} min" if h else f"~{m} min"


def _count(x: float) -> str:
    return f"{x:.0f}" if x == int(x) else f"{x:g}"


def job_line(job: Planned, elapsed: float, bar: Bar | None, left: float | None) -> str:
    """One running job: `train[d40-l2-t4] Epoch 0 63% 126/200 | 1:12 so far, ~0:45 left`."""
    parts = [job.name]
    if bar is not None:
        if bar.desc:
            parts.append(bar.desc if len(bar.desc) <= 32 else bar.desc[:31] + "…")
        parts.append(f"{bar.fraction:.0%} {_count(bar.n)}/{_count(bar.total)}" if bar.fraction is not None
                     else f"{_count(bar.n)} so far")
    timing = f"{clock(elapsed)} so far, " + (f"~{clock(left)} left" if left is not None else "time left unknown")
    return f"{PREFIX}{' '.join(parts)} | {timing}"


def graph_line(o: Outlook) -> str:
    """`graph: 12/62 jobs done, 2 running, ETA ~8 min`, naming the rules whose jobs could not be estimated."""
    text = f"{PREFIX}graph: {o.done}/{o.total} jobs done, {o.running} running, "
    untimed = ", ".join(f"{n} {rule}" for rule, n in sorted(o.untimed.items()))
    if o.eta_s is None:
        return text + f"ETA unknown until a job of each rule has finished ({untimed} left)"
    count = sum(o.untimed.values())
    return text + f"ETA {about(o.eta_s)}" + (f" + {count} jobs not yet timed ({untimed})" if count else "")


def status(running: Iterable[tuple[Planned, float, Bar | None]], waiting: Iterable[Planned], done: int,
           total: int, by_rule: Mapping[str, Fit], slots: float) -> list[str]:
    """The lines printed: one per running job (job, seconds so far, its last bar), then the graph's."""
    lines, lefts = [], []
    for job, elapsed, bar in running:
        left = left_s(job, elapsed, bar, by_rule)
        lines.append(job_line(job, elapsed, bar, left))
        lefts.append((job, left))
    return [*lines, graph_line(outlook(waiting, lefts, done, total, by_rule, slots))]


def interval(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds between status prints: MORPH_PROGRESS_S, 30 unless set; 0 (or less) turns them off."""
    raw = environ.get(INTERVAL_ENV, "").strip()
    try:
        return float(raw) if raw else INTERVAL_S
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: give the seconds between progress lines (0: none)") from None


def training_flops(exp) -> Callable[[str, Mapping[str, str]], float | None]:
    """A job's cost for the fit: a training run's FLOPs (shape and tokens from the experiment); None for other
    jobs, and for a top-k slot, whose shape the selection names at run time (most are copies of a validated
    run)."""
    from morph.train.flops import train_flops_per_token
    from morph.workflow.pipeline import STAGE

    def cost(rule: str, wildcards: Mapping[str, str]) -> float | None:
        stage = STAGE.get(rule)
        if stage is None or stage.command != "train" or len(wildcards) != 1:
            return None
        try:
            run = exp.run(next(iter(wildcards.values())))
        except KeyError:
            return None
        return float(train_flops_per_token(run.shape, exp.model.seq_len) * run.tokens)

    return cost


class Monitor:
    """Prints `status` every `every_s` seconds while Snakemake's jobs run (see the module docstring)."""

    def __init__(self, workflow, cost: Callable[[str, Mapping[str, str]], float | None] = lambda rule, wc: None,
                 every_s: float | None = None, stream=None, exclusive: tuple[str, float] | None = None):
        self.workflow = workflow
        self.cost = cost
        self.every_s = interval() if every_s is None else every_s
        self.stream = stream
        self.exclusive = exclusive  # (resource, amount): a job asking this much of it runs alone
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._planned: dict = {}  # Snakemake job -> Planned
        self._history: list[tuple[str, float, Path]] = []  # (rule, cost, benchmark file) of every job in the graph
        self._seconds: dict[Path, tuple[float, float | None]] = {}  # benchmark file -> (mtime, seconds)
        self._started: dict = {}  # Snakemake job -> when it was first seen running
        self.slots = 1.0

    def _wants(self) -> bool:
        w = self.workflow
        return self.every_s > 0 and w.is_main_process and not w.dryrun and not w.touch

    def _planned_job(self, job) -> Planned:
        wildcards = dict(job.wildcards_dict)
        cost = self.cost(job.rule.name, wildcards)
        try:
            width = float(job.threads or 1)
            if self.exclusive and job.resources.get(self.exclusive[0], 0) >= self.exclusive[1]:
                width = float("inf")  # min(width, slots): every core
        except Exception:  # a resource Snakemake cannot evaluate before the job's inputs exist
            width = 1.0
        return Planned(job.rule.name, ",".join(str(v) for v in wildcards.values()),
                       1.0 if cost is None else cost, width)

    def start(self) -> None:
        """At onstart, in the main thread: read the plan, then sample and print from a daemon thread."""
        if not self._wants() or self._thread is not None:
            return
        w = self.workflow
        resources = w.global_resources
        self.slots = float(resources.get("_cores" if w.local_exec else "_nodes") or 1)
        if self.slots > 1e6:  # unbounded: as many as the plan has jobs
            self.slots = float(max(1, len(list(w.dag.needrun_jobs()))))
        self._planned = {job: self._planned_job(job) for job in w.dag.needrun_jobs()}
        for job in w.dag.jobs:  # this run's and the earlier runs' timings of the graph's jobs
            if job.benchmark:
                cost = self.cost(job.rule.name, dict(job.wildcards_dict))
                self._history.append((job.rule.name, 1.0 if cost is None else cost, Path(job.benchmark)))
        self._thread = threading.Thread(target=self._loop, name="morph-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """At onsuccess and onerror: no more lines."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=POLL_S + 1)

    def _loop(self) -> None:
        due = time.monotonic() + self.every_s
        while not self._stop.wait(min(POLL_S, self.every_s)):
            try:
                self._sample()
                if time.monotonic() >= due:
                    due = time.monotonic() + self.every_s
                    lines = self.lines()
                    if not self._stop.is_set():
                        print("\n".join(lines), file=self.stream or sys.stderr, flush=True)
            except Exception as err:  # a progress line is never worth a failed run: say so once and stop
                print(f"{PREFIX}stopped ({type(err).__name__}: {err})", file=self.stream or sys.stderr, flush=True)
                return

    def _running_jobs(self) -> list:
        scheduler = self.workflow.scheduler
        for _ in range(5):  # the scheduler's thread may change the set while it is copied
            try:
                jobs = list(scheduler.running) if scheduler is not None else []
                break
            except RuntimeError:
                continue
        else:
            jobs = []
        return [j for job in jobs for j in getattr(job, "jobs", (job,)) if j in self._planned]

    def _sample(self) -> None:
        now = time.monotonic()
        for job in self._running_jobs():
            self._started.setdefault(job, now)

    def _fits(self) -> dict[str, Fit]:
        history = []
        for rule, cost, path in self._history:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            cached = self._seconds.get(path)
            if cached is None or cached[0] != mtime:
                cached = (mtime, benchmark_seconds(tail(path)))
                self._seconds[path] = cached
            if cached[1] is not None:
                history.append((rule, cost, cached[1]))
        return fits(history)

    def lines(self) -> list[str]:
        dag, now = self.workflow.dag, time.monotonic()
        running = [job for job in self._running_jobs() if not dag.finished(job)]
        for job in running:
            self._started.setdefault(job, now)
        done = sum(1 for job in self._planned if dag.finished(job))
        waiting = [p for job, p in self._planned.items() if job not in running and not dag.finished(job)]
        rows = [(self._planned[job], now - self._started[job],
                 last_bar(tail(job.log[0])) if job.log else None) for job in running]
        return status(rows, waiting, done, len(self._planned), self._fits(), self.slots)

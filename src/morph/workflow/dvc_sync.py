"""Snakemake and DVC on one tree: one lock between them, and one record of what is current.

`dvc repro` holds DVC's repo lock (`.dvc/tmp/lock`, an flock the kernel releases when its holder exits) before it
deletes any output, and lets go of it only while a stage's command runs, when `.dvc/tmp/rwlock` names its pid.
Snakemake takes that lock for its whole run and finds no live pid in the rwlock file, so each tool is refused
while the other runs, and a killed holder never leaves a stale lock. When a Snakemake run succeeds, the stages
of its jobs are recorded in dvc.lock, so `dvc status` and `dvc repro` see what Snakemake built."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from morph.core import process_lock
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.workflow import dvc_yaml, pipeline

DVC_DIR = Path(".dvc")
LOCK = DVC_DIR / "tmp/lock"
RWLOCK = DVC_DIR / "tmp/rwlock"
RECORDED = Path(".snakemake/morph.dvc-commit")  # touched when a run's jobs were recorded in dvc.lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(rwlock: dict) -> list[dict]:
    """The live processes the rwlock file names (a killed one's entries stay behind: they are ignored)."""
    infos = [*rwlock.get("write", {}).values(), *(i for infos in rwlock.get("read", {}).values() for i in infos)]
    return [i for i in infos if _alive(int(i["pid"]))]


def hold():
    """DVC's repo lock, held for this process's lifetime; None outside a DVC tree."""
    if not DVC_DIR.is_dir():
        return None
    lock = process_lock.hold(LOCK, lambda pid: (
        f"{LOCK}: a dvc command (pid {pid}) is running in this tree; wait for it to finish, or stop it "
        f"(kill {pid}), then rerun"))
    try:
        running = _running(json.loads(RWLOCK.read_text(encoding="utf-8"))) if RWLOCK.is_file() else []
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        lock.close()
        raise MorphError(f"{RWLOCK}: not DVC's lock records; if no dvc command is running, delete it and rerun") \
            from None
    if running:
        lock.close()
        pid, cmd = running[0]["pid"], running[0]["cmd"]
        raise MorphError(f"{RWLOCK}: `{cmd}` (pid {pid}) is running a stage in this tree; wait for it to finish, "
                         f"or stop it (kill {pid}), then rerun")
    return lock


def stage_names(jobs: Iterable[tuple[str, dict]], cfg: Experiment, params: str) -> list[str]:
    """The dvc.yaml stages of Snakemake jobs, given as (rule, wildcards)."""
    names = []
    for rule, wildcards in jobs:
        if rule in pipeline.STAGE:
            stage = pipeline.STAGE[rule]
            names.append(stage.node(cfg, params, wildcards[stage.wildcard[0]] if stage.wildcard[0] else "").name)
    return names


def record(lock, stages: list[str], cfg: Experiment, params: str) -> None:
    """After a successful run in a DVC tree: record the stages of its jobs, all current now, in dvc.lock (and the
    run-cache), when dvc.yaml holds this experiment's stages."""
    if lock is None or not stages:
        return
    adopt = f"morph dvc-yaml --params {shlex.quote(params)} && dvc commit -f"
    if not dvc_yaml.is_current(cfg, params):
        print(f"morph: dvc.yaml is not {params}'s graph, so DVC does not see this run; to record it: {adopt}",
              file=sys.stderr)
        return
    lock.close()  # dvc commit takes the lock itself
    # Only what DVC sees as changed: committing a stage rehashes its outputs into the cache, minutes for the whole
    # default graph, so a rerun of one job must not pay for all of them. The status read costs a few seconds.
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], capture_output=True, text=True)
    try:
        changed = {name.rpartition(":")[2] for name in json.loads(status.stdout)}
        stages = [s for s in stages if s in changed]
    except (json.JSONDecodeError, TypeError):
        pass  # unreadable status: record every stage of the run
    if not stages:
        RECORDED.touch()
        return
    out = subprocess.run([sys.executable, "-m", "dvc", "commit", "-f", "-q", *stages], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"morph: dvc.lock: recording this run failed ({out.stderr.strip()[-500:]}); to record it: {adopt}",
              file=sys.stderr)
        return
    RECORDED.touch()

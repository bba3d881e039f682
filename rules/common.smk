# The validated experiment, and the checks and helpers every rule shares.
import functools
import json
import os
import shlex
import sys
from pathlib import Path

from morph.core import process_lock
from morph.core.errors import MorphError
from morph.core import experiment as morph_experiment
from morph.core.artifacts.common import PARAMS as PARAMS_FILE
from morph.core.artifacts.report import DECISION
from morph.workflow import dvc_sync
from morph.workflow import pipeline
from morph.workflow import preflight
from morph.workflow import snakemake_report
from morph.workflow import snakemake_timers

# `--configfile X` picks the experiment file; its path is passed to every command, and the same
# loader validates it. Commands read that file themselves, so anything Snakemake would merge on
# top of it (`--config k=v`, a second --configfile) is refused rather than silently ignored.
if len(workflow.overwrite_configfiles) > 1:
    raise MorphError("--configfile: give one experiment file; morph's commands read that one file")
PARAMS = os.path.relpath(workflow.overwrite_configfiles[0]) if workflow.overwrite_configfiles else PARAMS_FILE
# Loaded first: a NaN in the file would otherwise read as an override (NaN != NaN).
CFG = morph_experiment.load(PARAMS)
if config != (morph_experiment.read_raw(PARAMS) if workflow.overwrite_configfiles else {}):
    raise MorphError(
        f"--config: overrides are not applied to {PARAMS}, which every command reads; copy it, edit the copy "
        "and run with `--configfile <copy>` (the target first: snakemake results/morph1b.json --configfile <copy>)"
    )

# One Snakemake per working tree. Snakemake locks the tree only after planning, so a second run would
# first meet the outputs the first is writing, be told to pass --rerun-incomplete, and then write them too.
if workflow.is_main_process:
    TREE_LOCK = process_lock.hold(
        Path(".snakemake/morph.lock"),
        lambda pid: f".snakemake/morph.lock: another Snakemake (pid {pid}) is running in this tree; wait for it "
                    f"to finish, or stop it (kill {pid}) and rerun. Do not pass --unlock or --rerun-incomplete "
                    "while it runs: both runs would write the same outputs")
    # In a DVC tree, DVC's lock too: `dvc repro` is refused while this runs, and this while it runs (dvc_sync).
    DVC_LOCK = dvc_sync.hold()
    preflight.sources(CFG)


def _newest(folder):
    return max((f.stat().st_mtime for f in Path(folder).iterdir()), default=0.0) if Path(folder).is_dir() else 0.0


# DVC rewrites or restores outputs without Snakemake's records, which then sees them as new and would
# retrain. Say how to adopt such a tree instead (dvc.lock written by this workflow's own onsuccess is no sign).
if Path("dvc.lock").is_file() and Path("dvc.lock").stat().st_mtime > max(
        _newest(".snakemake/metadata"), dvc_sync.RECORDED.stat().st_mtime if dvc_sync.RECORDED.is_file() else 0.0):
    print(f"morph: dvc.lock is newer than Snakemake's records. If `dvc status` is clean, adopt DVC's outputs "
          f"without rerunning anything: snakemake --touch -j1 {CFG.at(DECISION)} --configfile {shlex.quote(PARAMS)}",
          file=sys.stderr)

# Snakemake deletes a job's outputs as it starts it, so what would fail a job is refused before any starts,
# once the plan is known: the outputs the planned jobs rebuild (a forced rebuild is the fix) are not checked.
onstart:
    preflight.check(CFG, PARAMS, frozenset(str(f) for job in workflow.dag.needrun_jobs() for f in job.output),
                    frozenset(job.rule.name for job in workflow.dag.needrun_jobs()), workflow.local_exec)
    PROGRESS.start()

# Snakemake would wait up to a second for its rate limiter's last timer before exiting (snakemake_timers).
# In a DVC tree, the jobs of this run, all current now, are recorded in dvc.lock: DVC sees what Snakemake built.
onsuccess:
    PROGRESS.stop()
    snakemake_timers.cancel_pending()
    dvc_sync.record(DVC_LOCK, dvc_sync.stage_names(((job.rule.name, job.wildcards_dict) for job in workflow.dag.jobs),
                                                   CFG, PARAMS), CFG, PARAMS)

onerror:
    PROGRESS.stop()
    snakemake_timers.cancel_pending()


# Timing must not share the machine: a latency job takes the whole pool, every other job one unit.
MACHINE = 100
if "machine" not in workflow.global_resources:
    workflow.register_resource("machine", MACHINE)

def outputs(node):
    """A node's outputs as the table declares them: folders marked as such, and each figure and decision file
    marked for `snakemake --report`, which embeds it under its category with its caption, rule and params."""
    return [directory(o) if o in node.directories
            else report(o, **snakemake_report.marking(o, workflow.basedir, CFG.out_dir))
            if snakemake_report.reported(o, CFG.out_dir) else o for o in node.outs]


# The report's front page (report/workflow.rst) states the decision; Snakemake renders it with this config.
config[snakemake_report.DECISION_KEY] = snakemake_report.Decision(CFG.at(DECISION))


class Unrecorded:
    """A rule param that Snakemake's params rerun-trigger leaves out (it records only builtin values), while the
    shell command still formats it in."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


EXPERIMENT = "<experiment file>"  # what the recorded commands hold in place of its name


def sliced_params(node):
    """The params sections a node reads; Snakemake's params rerun-trigger fires when they change."""
    return json.dumps(pipeline.params_read(CFG, node.params), sort_keys=True)


# Progress a person can read: while jobs run, each running job's progress bar (from its log) and the graph's time
# left, on stderr every MORPH_PROGRESS_S seconds (30; 0: none). onstart calls PROGRESS.start() (not a dry run's),
# onsuccess and onerror PROGRESS.stop() (workflow/progress.py).
from morph.workflow import progress as workflow_progress

PROGRESS = workflow_progress.Monitor(workflow, workflow_progress.training_flops(CFG), exclusive=("machine", MACHINE))

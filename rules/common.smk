# The validated experiment, and the checks and helpers every rule shares.
import json
import os
import shlex
import sys
from pathlib import Path

from morph import process_lock
from morph.errors import MorphError
from morph.spec import experiment as morph_experiment
from morph.workflow import pipeline
from morph.workflow import preflight
from morph.workflow import snakemake_timers
from morph.spec.artifacts.common import CAPTIONS, FIGURES

# `--configfile X` picks the experiment file; its path is passed to every command, and the same
# loader validates it. Commands read that file themselves, so anything Snakemake would merge on
# top of it (`--config k=v`, a second --configfile) is refused rather than silently ignored.
if len(workflow.overwrite_configfiles) > 1:
    raise MorphError("--configfile: give one experiment file; morph's commands read that one file")
PARAMS = os.path.relpath(workflow.overwrite_configfiles[0]) if workflow.overwrite_configfiles else "params.yaml"
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
    preflight.sources(CFG)


def _newest(folder):
    return max((f.stat().st_mtime for f in Path(folder).iterdir()), default=0.0) if Path(folder).is_dir() else 0.0


# DVC rewrites or restores outputs without Snakemake's records, which then sees them as new and would
# retrain. Say how to adopt such a tree instead.
if Path("dvc.lock").is_file() and Path("dvc.lock").stat().st_mtime > _newest(".snakemake/metadata"):
    print(f"morph: dvc.lock is newer than Snakemake's records. If `dvc status` is clean, adopt DVC's outputs "
          f"without rerunning anything: snakemake --touch -j1 results/morph1b.json --configfile {shlex.quote(PARAMS)}",
          file=sys.stderr)

# Snakemake deletes a job's outputs as it starts it, so what would fail a job is refused before any starts,
# once the plan is known: the outputs the planned jobs rebuild (a forced rebuild is the fix) are not checked.
onstart:
    preflight.check(CFG, PARAMS, frozenset(str(f) for job in workflow.dag.needrun_jobs() for f in job.output),
                    frozenset(job.rule.name for job in workflow.dag.needrun_jobs()), workflow.local_exec)

# Snakemake would wait up to a second for its rate limiter's last timer before exiting (snakemake_timers).
onsuccess:
    snakemake_timers.cancel_pending()

onerror:
    snakemake_timers.cancel_pending()


# Timing must not share the machine: a latency job takes the whole pool, every other job one unit.
MACHINE = 100
if "machine" not in workflow.global_resources:
    workflow.register_resource("machine", MACHINE)

def outputs(node):
    """A node's outputs as the table declares them: folders marked as such, and each figure marked for
    `snakemake --report`, which embeds it with its caption (report/captions/<name>.rst), rule and params."""
    return [directory(o) if o in node.directories else figure(node, o) if o.startswith(f"{FIGURES}/") else o
            for o in node.outs]


def figure(node, path):
    caption = os.path.join(workflow.basedir, CAPTIONS, f"{os.path.splitext(os.path.basename(path))[0]}.rst")
    if not os.path.isfile(caption):
        raise MorphError(f"{caption}: no caption for the figure {path}; write one (a few sentences of reST)")
    return report(path, caption=caption, category=node.stage)


def sliced_params(node):
    """The params sections a node reads; Snakemake's params rerun-trigger fires when they change."""
    return json.dumps({k: CFG.params(k) for k in node.params}, sort_keys=True)

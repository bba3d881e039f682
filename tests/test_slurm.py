"""Jobs of the graph through a real single-node SLURM cluster (Debian slurm-wlm with munge on 127.0.0.1),
submitted by Snakemake's SLURM executor plugin, and a training job's ranks started by srun; daemons are shut
down after."""
from __future__ import annotations

import csv
import json
import os
import subprocess

import pytest

import slurm_cluster
from conftest import copy_tree
from morph.core.artifacts.train import RUNS_CSV, run_metrics
from test_end_to_end import BIN, CI

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    absent = slurm_cluster.missing()
    if absent:
        pytest.fail(f"SLURM is not installed ({', '.join(absent)} missing): "
                    "apt-get install slurm-wlm munge (.ci/run does this)")
    with slurm_cluster.cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def test_sbatch_runs_a_job(slurm_env, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho ran as $SLURM_JOB_ID\n")
    state = slurm_cluster.run_batch(["-o", str(tmp_path / "out.txt"), str(script)], slurm_env, timeout=120)
    assert state == "COMPLETED", state
    assert (tmp_path / "out.txt").read_text().startswith("ran as ")


def test_snakemake_trains_a_grid_through_slurm(slurm_env, ci_tree, two_runs, tmp_path):
    """Snakemake's SLURM executor plugin runs the graph's jobs as sbatch jobs, several at once: on a copy of the
    finished CI tree (conftest.ci_tree), two runs of its grid (depths 1 and 2) retrain, each its own sbatch job,
    and collect rebuilds runs.csv from them as a third. Only the executor differs from the local build: each run's
    loss and weights are the ones the local build recorded."""
    root = copy_tree(ci_tree, tmp_path / "tree")
    env = slurm_env | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    args = [str(BIN / "snakemake"), RUNS_CSV, "--configfile", CI,
            "--executor", "slurm", "--jobs", "4", "--latency-wait", "30",
            "--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "1",
            "--default-resources", "slurm_partition=debug", "mem_mb=2000", "runtime=30", "cpus_per_task=1",
            "--forcerun", *map(run_metrics, two_runs)]
    out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    log = out.stdout + out.stderr
    assert log.count("has been submitted with SLURM jobid") == len(two_runs) + 1, log[-3000:]  # the runs, collect
    # both runs were in SLURM's queue before either finished
    queued = out.stderr.count("has been submitted with SLURM jobid", 0, out.stderr.index("Finished jobid"))
    assert queued == len(two_runs), log[-3000:]
    for rid in two_runs:
        ran, local = (json.loads((tree / run_metrics(rid)).read_text()) for tree in (root, ci_tree))
        assert ran["wall_s"] != local["wall_s"], f"{rid} did not retrain"
        assert (ran["val_loss"], ran["model_sha256"]) == (local["val_loss"], local["model_sha256"]), rid
    rows, local_rows = ({r["run_id"]: r for r in csv.DictReader(open(tree / RUNS_CSV))} for tree in (root, ci_tree))
    assert sorted(int(rows[rid]["n_layers"]) for rid in two_runs) == [1, 2]
    assert {k: r["loss"] for k, r in rows.items()} == {k: r["loss"] for k, r in local_rows.items()}


def test_one_training_job_runs_as_two_slurm_tasks(slurm_env, ci_tokens, tmp_path):
    """The train rule's SLURM request and srun prefix start 2 ranks that Lightning picks up from SLURM; the run
    equals the one-process run."""
    from morph.core import experiment
    from morph.workflow import pipeline
    from test_train import RANKS, close, train_run, write_params

    rid = "d32-l1-t1"
    params = write_params(tmp_path / "ranks.yaml", **RANKS)
    cfg = experiment.load(params)
    ranks = pipeline.train_ranks(cfg)
    assert ranks.resources == {"mpi": "srun", "nodes": 1, "tasks_per_node": 2}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tokens").symlink_to(ci_tokens)
    script = tmp_path / "train.sh"
    script.write_text(f"#!/bin/sh\n{ranks.launch}{pipeline.STAGE['train'].node(cfg, str(params), rid).cmd}\n")
    env = slurm_env | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    state = slurm_cluster.run_batch([f"--nodes={ranks.resources['nodes']}",
                                     f"--ntasks-per-node={ranks.resources['tasks_per_node']}", "--cpus-per-task=1",
                                     "-D", str(tmp_path), "-o", str(tmp_path / "job.log"), str(script)],
                                    env, timeout=900)
    # both tasks write job.log, so a progress bar's multi-byte character can be split by the other's line
    log = (tmp_path / "job.log").read_text(errors="replace") if (tmp_path / "job.log").exists() else ""
    assert state == "COMPLETED", state + "\n" + log[-4000:]
    m = json.loads((tmp_path / run_metrics(rid)).read_text())
    # two SLURM tasks that Lightning took as its ranks (not ranks it started itself), one writer
    assert "SLURM auto-requeueing enabled" in log and "MEMBER: 2/2" in log
    assert m["world_size"] == 2 and log.count("val_loss") == 1

    one = train_run(write_params(tmp_path / "one.yaml"), rid, ci_tokens, tmp_path / "one")
    assert m["tokens_seen"] == one["tokens_seen"] and close(m["val_loss"], one["val_loss"])

"""The CI graph's training half through a real single-node SLURM cluster (Debian slurm-wlm with
munge on 127.0.0.1), submitted by Snakemake's SLURM executor plugin; daemons are shut down after."""
from __future__ import annotations

import csv
import os
import subprocess

import pytest
import slurm_cluster
from test_end_to_end import BIN, CI, fresh_copy

from morph.workflow import experiment

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
    out = subprocess.run(["sbatch", "--wait", "-o", str(tmp_path / "out.txt"), str(script)], env=slurm_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.txt").read_text().startswith("ran as ")


def test_snakemake_trains_the_ci_grid_through_slurm(slurm_env, tmp_path):
    root = fresh_copy(tmp_path)
    env = slurm_env | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    args = [str(BIN / "snakemake"), "results/runs.csv", "--configfile", CI,
            "--executor", "slurm", "--jobs", "4", "--latency-wait", "30",
            "--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "1",
            "--default-resources", "slurm_partition=debug", "mem_mb=2000", "runtime=30", "cpus_per_task=1"]
    out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    log = out.stdout + out.stderr
    # sample, tokenizer, one tokenize job per sample shard, the gather, 10 runs, collect
    shards = len(experiment.load(root / CI).sample_shards)
    assert log.count("has been submitted with SLURM jobid") == 1 + 1 + shards + 1 + 10 + 1, log[-3000:]
    rows = list(csv.DictReader(open(root / "results/runs.csv")))
    assert len(rows) == 10 and all(0 < float(r["loss"]) < 10 for r in rows)

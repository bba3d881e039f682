"""Two experiments in one checkout: an experiment's `out_dir` holds everything its graph writes, so its plan
touches no file of another experiment's, and a folder outside the checkout is refused by name."""
from __future__ import annotations

import shutil
from pathlib import PurePosixPath

import pytest
import yaml

from conftest import CI_PARAMS
from graphs import REPO, snakemake_jobs
from morph.core import experiment
from morph.core.artifacts.report import DECISION
from morph.core.schema import ConfigError

OTHER = "experiments/other"


def with_out_dir(dest, out_dir: str):
    raw = yaml.safe_load(CI_PARAMS.read_text()) | {"out_dir": out_dir}
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


@pytest.mark.parametrize("out_dir", ["/tmp/elsewhere", "../sibling", "runs/../..", "", "a\\b"])
def test_an_out_dir_outside_the_checkout_is_refused_by_name(tmp_path, out_dir):
    with pytest.raises(ConfigError, match=r"out_dir: .*must be a folder inside the checkout"):
        experiment.load(with_out_dir(tmp_path / "p.yaml", out_dir))


def test_every_job_of_an_experiment_writes_inside_its_out_dir(tmp_path):
    """The forced plan of a named experiment, read from Snakemake itself: every output lies under its folder, and
    it reads nothing outside but the code and the data sources; the default experiment's plan writes nothing under
    that folder."""
    copy = tmp_path / "repo"
    outputs = {".git", ".snakemake", ".dvc", ".venv", "runs", "results", "latency", "logs", "data", "experiments"}
    shutil.copytree(REPO, copy, ignore=lambda folder, names: outputs & set(names) if folder == str(REPO) else ())
    shutil.copytree(REPO / "data" / "raw", copy / "data" / "raw")
    other = with_out_dir(copy / "other.yaml", OTHER)
    jobs = snakemake_jobs("other.yaml", target=f"{OTHER}/{DECISION}", cwd=copy)
    written = {o for outs in jobs for o in outs}
    assert f"{OTHER}/{DECISION}" in written and len(jobs) > 20
    outside = sorted(o for o in written if not PurePosixPath(o).is_relative_to(OTHER))
    assert not outside, outside
    read_outside = {i for _, _, ins in jobs.values() for i in ins if not PurePosixPath(i).is_relative_to(OTHER)}
    assert all(i.startswith(("src/", "data/raw/")) for i in read_outside), sorted(read_outside)[:5]
    default = snakemake_jobs(str(CI_PARAMS.relative_to(REPO)), cwd=copy)
    assert not [o for outs in default for o in outs if PurePosixPath(o).is_relative_to("experiments")]
    assert other.is_file()

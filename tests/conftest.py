"""Shared fixtures: the CI experiment, its sampled and tokenized data and its whole graph built through
Snakemake (each once per session), and a helper that writes variants of the CI experiment."""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

# Tests share two cores with each other and other jobs; torch reads this when it is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CI_PARAMS = ROOT / "configs" / "ci.yaml"
# The CI experiment cut to two runs (depths 1 and 2 at one size and one budget), for tests of the graph's
# machinery rather than its numbers.
TWO_RUNS = {"data.train_tokens": 200_000, "data.val_tokens": 4000, "grid.multipliers": [2],
            "grid.sizes": [{"params": 60000, "depths": [1, 2]}], "grid.replicates": [], "select.tokens": 100_000,
            "select.validate": "none"}


def write_params(path: Path, overrides: dict | None = None, base: Path = CI_PARAMS) -> Path:
    """Write `base` with dotted-key overrides, e.g. {"data.paths": [...], "seed": 3}."""
    raw = copy.deepcopy(yaml.safe_load(base.read_text()))
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def make_params(tmp_path):
    """make_params(**{"data.seed": ...}) -> path of a variant of configs/ci.yaml in tmp_path."""
    counter = iter(range(1_000_000))

    def make(overrides: dict | None = None, base: Path = CI_PARAMS) -> Path:
        return write_params(tmp_path / f"params-{next(counter)}.yaml", overrides, base)

    return make


@pytest.fixture(scope="session")
def ci_cfg():
    from morph.core import experiment


    return experiment.load(CI_PARAMS)


@pytest.fixture(scope="session")
def ci_data(tmp_path_factory) -> Path:
    """`morph sample` then `morph tokenize` for configs/ci.yaml, once; holds sample/ and tokens/."""
    from morph import cli

    out = tmp_path_factory.mktemp("ci_data")
    with contextlib.chdir(ROOT):  # the experiment's data.paths are relative to the repository
        assert cli.main(["sample", "--params", str(CI_PARAMS), "--out", str(out / "sample")]) == 0
        assert cli.main(["tokenize", "--params", str(CI_PARAMS), "--sample", str(out / "sample"),
                         "--out", str(out / "tokens")]) == 0
    return out


@pytest.fixture(scope="session")
def ci_tokens(ci_data) -> Path:
    """data/tokens for configs/ci.yaml: a token shard and its summary per sample shard, meta.json, tokenizer/."""
    return ci_data / "tokens"


def stat_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and modification time: what a test that wrote into the shared tree would change."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")
            if not p.is_dir() or p.is_symlink()}


@pytest.fixture(scope="session")
def ci_tree(tmp_path_factory) -> Path:
    """A fresh copy of the repository with the whole graph built on configs/ci.yaml through Snakemake, once per
    session. Shared, so never written: a test that changes anything works on its own `copy_tree` of it, which
    plans nothing (test_end_to_end.py::test_a_copy_of_the_tree_by_cp_r_plans_nothing)."""
    from morph.core.artifacts.report import DECISION
    from test_end_to_end import CI, fresh_copy, sh

    root = fresh_copy(tmp_path_factory.mktemp("ci_tree"))
    sh(["snakemake", "-j2", DECISION, "--configfile", CI], root, timeout=1800)
    built = stat_tree(root)
    yield root
    assert stat_tree(root) == built, "a test wrote into the shared CI tree: it must work on a copy_tree of it"


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory) -> list[str]:
    """The run ids of the two-run experiment (TWO_RUNS: depths 1 and 2), which the CI grid holds too: tests on
    ci_tree retrain these where they used to build a two-run tree of their own."""
    from morph.core import experiment

    ids = [r.run_id for r in experiment.load(write_params(tmp_path_factory.mktemp("two_runs") / "two.yaml",
                                                          TWO_RUNS)).grid_runs]
    assert len(ids) == 2 and set(ids) <= {r.run_id for r in experiment.load(CI_PARAMS).grid_runs}, ids
    return ids


def copy_tree(tree: Path, dest: Path) -> Path:
    """A copy of a built tree for one test to change, modification times kept."""
    return Path(shutil.copytree(tree, dest, symlinks=True))


def record_with(kind, **values):
    """A record of `kind` (morph.core.records) holding `values`, every other key a blank of its type (None where
    it may be null): for a test whose stage reads only some of a record's keys."""
    import typing

    blank = {str: "", int: 0, float: 0.0, bool: False, dict: {}, list: []}
    hints = typing.get_type_hints(kind)

    def placeholder(hint):
        if type(None) in typing.get_args(hint):
            return None
        return copy.deepcopy(blank[typing.get_origin(hint) or hint])

    return kind(**{key: placeholder(hints[key]) for key in kind.keys()} | values)

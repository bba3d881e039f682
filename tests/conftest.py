"""Shared fixtures: the CI experiment, its sampled and tokenized data (built once per session),
and a helper that writes variants of the CI experiment."""
from __future__ import annotations

import contextlib
import copy
import os
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
    from morph.spec import experiment


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

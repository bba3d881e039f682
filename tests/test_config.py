"""The experiment loader: the shipped experiments load; bad input is refused, naming the key path,
both from Python and through the CLI (exit code 2, no traceback)."""
from __future__ import annotations

import pytest
import yaml

from conftest import CI_PARAMS, ROOT
from morph import cli
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.errors import MorphError


@pytest.mark.parametrize("path", [ROOT / PARAMS, CI_PARAMS])
def test_shipped_experiments_load(path):
    cfg = experiment.load(path)
    assert cfg.data.train_tokens >= max(r.tokens for r in cfg.grid_runs)
    raw = yaml.safe_load(path.read_text())  # what the file says, read without the loader
    assert (cfg.seed, cfg.data.train_tokens, cfg.data.val_tokens) == (
        raw["seed"], raw["data"]["train_tokens"], raw["data"]["val_tokens"])


BAD = [
    ({"data.shuffle": True}, "data.shuffle: unknown key"),
    ({"data.margin": "lots"}, "data.margin: expected float, got str 'lots'"),
    ({"data.allow_repeat": "yes"}, "data.allow_repeat: expected bool"),
    ({"data.source": "s3"}, "data.source: 's3' is not one of ['fixture', 'local', 'hub']"),
    ({"data.margin": 0.5}, "data.margin: 0.5 is below the minimum 1.0"),
    ({"tokenizer.name": "bpe:100"}, "tokenizer.name: 'bpe:100' has a BPE vocabulary outside 257..65536"),
    ({"model.n_heads": 16, "grid.shapes": [{"d_model": 250, "n_layers": 2}]},
     "grid.shapes[0].d_model: 250 is not divisible by n_heads=16"),
    ({"model.n_kv_heads": 3}, "model.n_kv_heads: 3 does not divide n_heads=2"),
    ({"model.seq_len": 4096}, "model.seq_len: 4096 exceeds model.max_position_embeddings=128"),
    ({"data.train_tokens": 1000}, "data.train_tokens: 1,000 is below the largest run's budget"),
    # Values in range for their type but meaningless, refused at load time, before any job deletes an output.
    ({"train.lr": 0}, "train.lr: 0.0 must be above 0"),
    ({"train.beta2": 1.0}, "train.beta2: 1.0 must be below 1"),
    ({"latency.new_tokens": 1000}, "latency.new_tokens: prompt_len 16 + new_tokens 1000 exceeds "
                                   "model.max_position_embeddings=128"),
    ({"select.law": "kaplan"}, "select.law: 'kaplan' is not fitted"),
    ({"select.seeds": 0}, "select.seeds: 0 is below the minimum 1"),
    ({"select.margin": {"value": 0.01, "of": "percent"}}, "select.margin.of: 'percent' is not one of"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_params_name_the_key(make_params, tmp_path, capsys, overrides, message):
    path = make_params(overrides)
    with pytest.raises(MorphError) as err:
        experiment.load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    # The same through the CLI: exit 2, the message on stderr, nothing written.
    out = tmp_path / "sample"
    assert cli.main(["sample", "--params", str(path), "--out", str(out)]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_missing_and_unparsable_files(tmp_path, capsys):
    assert cli.main(["sample", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: experiment file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    assert cli.main(["tokenize", "--params", str(broken)]) == 2
    assert "broken.yaml: not valid YAML" in capsys.readouterr().err

"""The training stage: parameter counts, exact budgets, resume after SIGKILL, determinism, bad input, collect."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import record_with
from conftest import write_params as write_ci_params
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import META
from morph.core.artifacts.select import SELECTION, SelectedSlot, Selection
from morph.core.artifacts.train import LOSS_CURVE, RUN_METRICS, RUN_MODEL, RUNS, RUNS_CSV, RUNS_INPUTS, run_metrics
from morph.core.shape import ShapeRules

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def tokens(ci_tokens):
    """Real tokens: configs/ci.yaml's sample of the shipped fixture, BPE-512."""
    return ci_tokens


def write_params(path: Path, shapes=({"d_model": 32, "n_layers": 1},), multipliers=(1,), **train) -> Path:
    """configs/ci.yaml with a tiny explicit grid, short sequences and small batches."""
    train = {"batch_size": 8, "checkpoint_every": 10, "threads": 1, **train}
    return write_ci_params(path, {
        "model.seq_len": 32,
        "grid": {"multipliers": list(multipliers), "shapes": [dict(s) for s in shapes]},
        **{f"train.{k}": v for k, v in train.items()},
    })


def train_run(params: Path, rid: str, tokens: Path, out: Path) -> dict:
    from morph.train.run import train

    cfg = experiment.load(params)
    return train(cfg, cfg.run(rid), tokens, out)


@pytest.fixture(scope="session")
def params(tmp_path_factory):
    return write_params(tmp_path_factory.mktemp("params") / PARAMS)


@pytest.fixture(scope="session")
def reference(params, tokens, tmp_path_factory):
    """One uninterrupted run of d32-l1 at 1 token per parameter (181 steps)."""
    out = tmp_path_factory.mktemp("runs") / "d32-l1-t1"
    return out, train_run(params, "d32-l1-t1", tokens, out)


# ---- parameter counts ---------------------------------------------------------------------------

@pytest.mark.parametrize("d_model,n_layers,n_heads,n_kv_heads,tie", [
    (32, 1, 2, 2, False), (64, 2, 4, 2, False), (48, 3, 4, 1, True), (96, 2, 8, 8, True), (128, 4, 8, 2, False)])
def test_shape_counts_equal_built_model_numel(d_model, n_layers, n_heads, n_kv_heads, tie):
    from morph.core.decoder import build_model
    from morph.core.shape import Shape, swiglu_ffn

    shape = Shape(d_model, n_layers, n_heads, n_kv_heads, swiglu_ffn(d_model, 32), 512, tie)
    model = build_model(shape, 128, 0, seed=0)
    numel = sum(p.numel() for p in model.parameters())  # tied weights are one parameter
    embedding = model.get_input_embeddings().weight.numel() + (0 if tie else model.lm_head.weight.numel())
    assert numel == shape.params()
    assert numel - embedding == shape.non_embedding_params()
    assert model.config.num_key_value_heads == n_kv_heads and model.config.tie_word_embeddings == tie


def test_build_model_is_seeded():
    import torch

    from morph.core.decoder import build_model

    shape = ShapeRules(vocab_size=512, n_heads=2, ffn_multiple=16).build(32, 1)
    a, b, c = (build_model(shape, 64, 0, seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


# ---- budgets, batches and the schedule ----------------------------------------------------------

@pytest.mark.parametrize("budget", [256, 1000, 4096, 46176])
def test_targets_trained_equal_the_budget_exactly(budget):
    from morph.train.batches import IGNORE, steps_for_budget, train_batch

    data = np.arange(5000, dtype=np.uint16)
    steps = steps_for_budget(budget, 8, 32)
    counted = sum(int((train_batch(data, s, 1, 8, 32, budget)[1] != IGNORE).sum()) for s in range(steps))
    assert counted == budget
    assert steps == math.ceil(budget / 256)


def test_batches_are_a_function_of_seed_and_step():
    import torch

    from morph.train.batches import train_batch

    data = np.arange(10_000, dtype=np.uint16)
    x1, y1 = train_batch(data, 5, 7, 4, 16, 10**6)
    x2, y2 = train_batch(data, 5, 7, 4, 16, 10**6)
    x3, _ = train_batch(data, 6, 7, 4, 16, 10**6)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert torch.equal(y1[:, :-1], x1[:, 1:])  # targets are the inputs shifted by one


def test_windows_are_drawn_across_shards_in_proportion_to_their_lengths():
    from morph.train.batches import TokenStream, train_batch, val_windows

    whole = np.arange(10_000, dtype=np.uint16)
    one = TokenStream([whole])
    for step in range(3):  # one shard draws exactly as one array did, so old runs resume unchanged
        assert all(np.array_equal(a, b) for a, b in zip(train_batch(whole, step, 7, 4, 16, 10**6),
                                                          train_batch(one, step, 7, 4, 16, 10**6)))
    # Shards of 1,000 and 3,000 tokens with disjoint values: each window lies in one shard, and about
    # three in four come from the longer one.
    stream = TokenStream([whole[:1000], whole[5000:8000]])
    rows = np.concatenate([train_batch(stream, s, 3, 16, 16, 10**6)[0].numpy() for s in range(200)])
    in_short = (rows < 1000).all(axis=1)
    assert (in_short | (rows >= 5000).all(axis=1)).all()
    assert abs(1 - in_short.mean() - (3000 - 16) / (3000 - 16 + 1000 - 16)) < 0.05
    inputs, _ = val_windows(TokenStream([whole[:40], whole[100:200]]), 16, 5)
    assert [int(r[0]) for r in inputs] == [0, 16, 100, 116, 132]


def test_a_truncated_shard_is_named_with_the_command_that_rebuilds_it(tokens, params, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "tokens"
    shutil.copytree(tokens, damaged)
    shard = damaged / "train-00002.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(damaged),
                  "--out", str(tmp_path / "out"))
    assert f"{shard}: holds 500 tokens but {META} lists" in err and "(truncated)" in err
    assert f"snakemake -j1 --force data/tokens/train-00002.bin --configfile {params}" in err
    assert "dvc repro -s tokenize_shard-train-00002" in err
    assert not (tmp_path / "out").exists()


def test_held_out_windows_are_whole_batches_so_any_rank_count_splits_them():
    from morph.core.errors import MorphError
    from morph.train.batches import val_count

    val = np.arange(32 * 20 + 1, dtype=np.uint16)  # 20 windows of 32
    assert val_count(val, 32, 8, 8) == 16  # 2 whole batches of 8, not 20 windows
    assert val_count(val, 32, 1, 8) == 8
    with pytest.raises(MorphError, match="hold 641 tokens, less than one batch"):
        val_count(val, 32, 8, 32)


def test_lr_warms_up_then_decays_to_the_floor():
    from morph.train.lm import Optim, lr_factor

    o = Optim(lr=1.0, betas=(0.9, 0.95), weight_decay=0.1, warmup_steps=10, total_steps=100,
              min_lr_ratio=0.1, ema_decay=0.9, grad_clip=1.0)
    factors = [lr_factor(s, o) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))


# ---- a real run, its outputs, determinism and resume --------------------------------------------

def test_run_writes_model_and_metrics(reference, tokens):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, m = reference
    saved = json.loads((out / RUN_METRICS).read_text())
    assert saved == m
    assert m["tokens_seen"] == m["tokens"] == 46176 and m["steps"] == 181
    assert m["params"] == 46176 and m["non_embedding_params"] == 13408
    assert 0 < m["val_loss"] < math.log(512) and 0 < m["train_loss_ema"] < math.log(512)
    assert m["tokens_per_s"] > 0 and 0 < m["mfu"] < 1 and m["peak"]["flops"] > 0 and "measured" in m["peak"]["source"]
    # timed past the first steps and without the 18 checkpoint writes: fewer seconds than the whole loop
    assert m["throughput"]["steps"] == 181 - 2 and 0 < m["throughput"]["seconds"] < m["train_s"]
    assert m["tokens_per_s"] == pytest.approx(179 * 8 * 32 / m["throughput"]["seconds"])
    assert m["provenance"]["inputs"][str(tokens / META)]
    assert not (out / "ckpt").exists()
    curve = (out / LOSS_CURVE).read_text().splitlines()
    assert curve[0].split(",") == ["lr", "step", "train_loss", "train_loss_ema"] and len(curve) == 1 + 19
    assert float(curve[-1].split(",")[3]) == pytest.approx(m["train_loss_ema"])
    tok = AutoTokenizer.from_pretrained(out / RUN_MODEL)
    model = AutoModelForCausalLM.from_pretrained(out / RUN_MODEL)
    ids = tok("To be, or not to be", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4


def test_the_model_folder_carries_its_card_and_the_trained_context(reference, params):
    """A folder others can use: AutoTokenizer caps inputs at the context the model was trained at, and the README is
    a model card whose facts are the run's record."""
    from huggingface_hub import ModelCard
    from transformers import AutoTokenizer

    out, m = reference
    assert AutoTokenizer.from_pretrained(out / RUN_MODEL).model_max_length == experiment.load(params).model.seq_len
    card = ModelCard.load(out / RUN_MODEL / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    rows = [line.strip("|").split("|") for line in card.text.splitlines() if line.startswith("| ")]
    header, values = [c.strip() for c in rows[0]], [c.strip() for c in rows[1]]
    shape = dict(zip(header, values))
    assert (int(shape["d_model"]), int(shape["n_layers"])) == (m["shape"]["d_model"], m["shape"]["n_layers"])
    assert int(shape["N (non-embedding)"].replace(",", "")) == m["non_embedding_params"]
    assert f"{m['val_loss']:.4f} nats per token" in card.text and f"{m['tokens_seen']:,} tokens" in card.text


def test_same_seed_gives_the_same_losses_and_tensorboard_logs_the_curve(reference, tokens, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, first = reference
    # The logger is not part of the result: a TensorBoard run trains to the same numbers.
    again = train_run(write_params(tmp_path / "tb.yaml", logger="tensorboard"), "d32-l1-t1", tokens, tmp_path / "again")
    assert again["val_loss"] == first["val_loss"]
    assert again["train_loss_ema"] == first["train_loss_ema"]
    events = EventAccumulator(str(tmp_path / "again" / "tb")).Reload()
    with open(tmp_path / "again" / LOSS_CURVE, newline="") as f:
        curve = list(csv.DictReader(f))
    for tag in ("train_loss", "train_loss_ema", "lr"):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(int(r["step"]), pytest.approx(float(r[tag]), rel=1e-6)) for r in curve], tag


def test_sigkill_then_restart_resumes_to_the_same_loss(reference, params, tokens, tmp_path, capsys):
    import multiprocessing

    from morph.train.run import resume_point

    out = tmp_path / "killed"
    ckpt = out / "ckpt" / "last.ckpt"
    # fork: the child inherits the imported libraries, so the test does not pay for importing them again
    child = multiprocessing.get_context("fork").Process(target=train_run, args=(params, "d32-l1-t1", tokens, out))
    child.start()
    deadline = time.time() + 60
    while not ckpt.exists() and child.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert ckpt.exists() and not (out / RUN_METRICS).exists()
    assert resume_point(ckpt, "another configuration") is None
    assert "different configuration" in capsys.readouterr().err

    resumed = train_run(params, "d32-l1-t1", tokens, out)
    assert 0 < resumed["resumed_from_step"] < resumed["steps"]
    assert "resuming d32-l1-t1 from step" in capsys.readouterr().err
    ref_out, first = reference
    # on CPU the resumed run is bit-for-bit the uninterrupted one
    assert resumed["val_loss"] == first["val_loss"]
    assert resumed["train_loss_ema"] == first["train_loss_ema"]
    # the loss curve spans both sessions, step for step like the uninterrupted run's
    curve = [(r["step"], float(r["lr"])) for r in csv.DictReader((out / LOSS_CURVE).open())]
    ref_curve = [(r["step"], float(r["lr"])) for r in csv.DictReader((ref_out / LOSS_CURVE).open())]
    assert curve == ref_curve


def test_selected_slot_trains_through_the_same_path(params, tokens, tmp_path):
    from morph import cli

    selection = tmp_path / SELECTION
    selection.parent.mkdir()
    top_1 = record_with(SelectedSlot, slot="top-1", d_model=32, n_layers=2, n_kv_heads=2, run_id="d32-l2-D4096")
    selection.write_text(json.dumps(record_with(Selection, top_k=[top_1], tokens=4096).to_json()))
    out = tmp_path / "top-1"
    assert cli.main(["train", "--params", str(params), "--selection", str(selection), "--slot", "top-1",
                     "--tokens", str(tokens), "--out", str(out)]) == 0
    m = json.loads((out / RUN_METRICS).read_text())
    assert (m["run_id"], m["slot"], m["tokens_seen"], m["steps"]) == ("d32-l2-D4096", "top-1", 4096, 16)
    assert m["shape"]["n_layers"] == 2 and str(selection) in m["provenance"]["inputs"]


# ---- several ranks: the same run, batch for batch ------------------------------------------------

RANKS = {"devices": 2, "strategy": "ddp", "accelerator": "cpu"}


def close(a: float, b: float) -> bool:
    """The issue's tolerance for one run on many ranks against one device: relative difference < 1e-4."""
    return abs(a / b - 1) < 1e-4


def morph_train(params: Path, rid: str, tokens: Path, out: Path) -> subprocess.Popen:
    """`morph train` in its own process group (Lightning starts rank 1 by running the command again). Both ranks
    share the pipe, so a split multi-byte character is replaced rather than fatal."""
    return subprocess.Popen([str(BIN / "morph"), "train", "--params", str(params), "--run", rid, "--tokens",
                             str(tokens), "--out", str(out)], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")


@pytest.fixture(scope="session")
def two_ranks(tokens, tmp_path_factory):
    """The reference run on 2 CPU ranks (gloo, 1 thread each)."""
    root = tmp_path_factory.mktemp("ranks")
    params = write_params(root / PARAMS, **RANKS)
    out = root / "d32-l1-t1"
    proc = morph_train(params, "d32-l1-t1", tokens, out)
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log[-3000:]
    return params, out, json.loads((out / RUN_METRICS).read_text()), log


def test_two_ranks_train_to_the_one_device_loss(reference, two_ranks):
    ref_out, ref = reference
    _, out, m, log = two_ranks
    assert m["world_size"] == 2 and m["micro_batch_size"] == 4 and m["strategy"] == "ddp"
    assert (m["tokens_seen"], m["steps"], m["val_tokens"]) == (ref["tokens_seen"], ref["steps"], ref["val_tokens"])
    assert close(m["val_loss"], ref["val_loss"]) and close(m["train_loss_ema"], ref["train_loss_ema"])
    # rank 0 alone wrote the curve: one row per logged step, as on one device
    rows = lambda d: [r["step"] for r in csv.DictReader((d / LOSS_CURVE).open())]  # noqa: E731 (a one-line helper)
    assert rows(out) == rows(ref_out)
    assert log.count("val_loss") == 1 and not (out / "ckpt").exists()


def test_micro_batches_train_to_the_whole_batch_loss(reference, tokens, tmp_path):
    _, ref = reference
    params = write_params(tmp_path / "p.yaml", micro_batch_size=4)
    m = train_run(params, "d32-l1-t1", tokens, tmp_path / "out")
    assert m["tokens_seen"] == ref["tokens_seen"] and m["micro_batch_size"] == 4
    assert close(m["val_loss"], ref["val_loss"]) and close(m["train_loss_ema"], ref["train_loss_ema"])


def test_sigkill_of_two_ranks_then_restart_resumes(two_ranks, tokens, tmp_path):
    params, _, uninterrupted, _ = two_ranks
    out = tmp_path / "killed"
    proc = morph_train(params, "d32-l1-t1", tokens, out)
    deadline = time.time() + 120
    while not (out / "ckpt" / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # both ranks at once
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not (out / RUN_METRICS).exists()

    again = morph_train(params, "d32-l1-t1", tokens, out)
    log = again.communicate(timeout=600)[0]
    assert again.returncode == 0, log[-3000:]
    assert log.count("resuming d32-l1-t1 from step") == 1
    m = json.loads((out / RUN_METRICS).read_text())
    assert 0 < m["resumed_from_step"] < m["steps"]
    assert m["val_loss"] == uninterrupted["val_loss"]
    # the checkpoint holds the ranks' summed EMA, so the sum's rounding order changes once: last bits only
    assert m["train_loss_ema"] == pytest.approx(uninterrupted["train_loss_ema"], rel=1e-12)


@pytest.mark.parametrize("train,message", [
    ({"devices": 3}, "train.batch_size: 8 sequences do not split evenly over 3 ranks"),
    ({"micro_batch_size": 3}, "train.micro_batch_size: 3 does not divide each rank's share of the batch"),
    ({"strategy": "fsdp", "accelerator": "cpu"}, "train.strategy: fsdp needs train.accelerator gpu"),
    ({"devices": "cores + 1", "accelerator": "cpu", "batch_size": 8 * (len(os.sched_getaffinity(0)) + 1)},
     "this machine has"),
    ({"logger": "tensorboard"}, "train.logger: tensorboard needs the tensorboard package"),
])
def test_refused_by_name_before_training(train, message, tmp_path, tokens, capsys, monkeypatch):
    if train.get("logger") == "tensorboard":  # as on a machine without the package
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    if train.get("devices") == "cores + 1":
        train["devices"] = len(os.sched_getaffinity(0)) + 1
    params = write_params(tmp_path / "p.yaml", **train)
    out = tmp_path / "out"
    err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(tokens),
                  "--out", str(out))
    assert message in err
    assert not out.exists()


# ---- bad input ---------------------------------------------------------------------------------

def run_cli(capsys, *argv) -> str:
    from morph import cli

    assert cli.main(list(argv)) == 2
    return capsys.readouterr().err


def test_budget_smaller_than_one_batch(tmp_path, tokens, capsys):
    params = write_params(tmp_path / "p.yaml", multipliers=(0.001,))
    err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t0.001", "--tokens", str(tokens),
                  "--out", str(tmp_path / "out"))
    assert "token budget 46 is smaller than one batch" in err and "train.batch_size 8" in err
    assert not (tmp_path / "out").exists()


def test_seq_len_longer_than_the_data(tmp_path, tokens, params, capsys):
    import shutil

    from morph.core.io import sha256_file

    short = tmp_path / "tokens"
    shutil.copytree(tokens, short)
    meta = json.loads((short / META).read_text())
    val = meta["splits"]["val"]["shards"][0]
    np.fromfile(short / val["file"], dtype=np.uint16)[:20].tofile(short / val["file"])
    val.update(tokens=20, sha256=sha256_file(short / val["file"]))
    (short / META).write_text(json.dumps(meta))
    err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(short),
                  "--out", str(tmp_path / "out"))
    assert f"the val shards in {short} hold at most 20 tokens each, fewer than model.seq_len + 1 = 33" in err
    assert not (tmp_path / "out" / RUN_METRICS).exists()


def test_bad_run_id_slot_and_tokens(tmp_path, tokens, params, capsys):
    out = str(tmp_path / "out")
    assert "'d99-l9-t1' is not in the experiment's grid" in run_cli(
        capsys, "train", "--params", str(params), "--run", "d99-l9-t1", "--tokens", str(tokens), "--out", out)
    selection = tmp_path / SELECTION
    selection.parent.mkdir()
    selection.write_text(json.dumps(record_with(Selection, top_k=[], tokens=4096).to_json()))
    assert "no entry for slot 'top-2'" in run_cli(
        capsys, "train", "--params", str(params), "--selection", str(selection), "--slot", "top-2",
        "--tokens", str(tokens), "--out", out)
    assert "tokens directory not found" in run_cli(
        capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(tmp_path / "nope"),
        "--out", out)


def test_diverging_run_stops_naming_the_step(tmp_path, tokens, capsys):
    params = write_params(tmp_path / "p.yaml", lr=1e30, warmup_frac=0.0)
    out = tmp_path / "out"
    err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(tokens),
                  "--out", str(out))
    assert "training loss is" in err and "at step" in err and "lower train.lr" in err
    assert not (out / RUN_METRICS).exists() and not (out / RUN_MODEL).exists()


def test_a_failed_rerun_keeps_the_old_complete_result(reference, tokens, tmp_path, capsys):
    import shutil

    from morph.core.io import sha256_tree

    out = tmp_path / "d32-l1-t1"
    shutil.copytree(reference[0], out)
    before = {name: sha256_tree(out / name) for name in (RUN_MODEL, RUN_METRICS)}
    diverging = write_params(tmp_path / "p.yaml", lr=1e30, warmup_frac=0.0)
    err = run_cli(capsys, "train", "--params", str(diverging), "--run", "d32-l1-t1", "--tokens", str(tokens),
                  "--out", str(out))
    assert "training loss is" in err
    assert {name: sha256_tree(out / name) for name in (RUN_MODEL, RUN_METRICS)} == before
    assert json.loads((out / RUN_METRICS).read_text())["model_sha256"] == before[RUN_MODEL]


def test_a_second_trainer_on_the_same_run_is_refused_naming_the_first(params, tokens, tmp_path, capsys):
    import os

    from morph.train import run_lock

    out = tmp_path / "d32-l1-t1"
    held = run_lock.hold(out)  # as if another trainer were running
    try:
        err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(tokens),
                      "--out", str(out))
    finally:
        held.close()
    assert f"{out}: another `morph train` (pid {os.getpid()}) is training this run" in err
    assert not (out / RUN_MODEL).exists() and not (out / "ckpt").exists()
    run_lock.hold(out).close()  # released with its holder, as a killed trainer's is


def test_token_ids_past_the_vocabulary_are_named(params, tokens, tmp_path, capsys):
    import shutil

    from morph.core.io import sha256_file

    bad = tmp_path / "tokens"
    shutil.copytree(tokens, bad)
    meta = json.loads((bad / META).read_text())
    for shard in meta["splits"]["train"]["shards"] + meta["splits"]["val"]["shards"]:
        ids = np.fromfile(bad / shard["file"], dtype=meta["dtype"])
        ids[::50] = meta["vocab_size"] + 88  # ids a larger tokenizer would write
        ids.tofile(bad / shard["file"])
        shard["sha256"] = sha256_file(bad / shard["file"])
    (bad / META).write_text(json.dumps(meta))
    err = run_cli(capsys, "train", "--params", str(params), "--run", "d32-l1-t1", "--tokens", str(bad),
                  "--out", str(tmp_path / "out"))
    assert f"{bad}: token id {meta['vocab_size'] + 88} is not below {META}'s vocab_size" in err
    assert "rerun `morph tokenize`" in err and "IndexError" not in err
    assert not (tmp_path / "out" / RUN_METRICS).exists()


# ---- collect -----------------------------------------------------------------------------------

def test_collect_writes_one_row_per_grid_run(reference, params, tmp_path, capsys):
    import shutil

    from morph import cli

    out, m = reference
    runs, csv_path, inputs = tmp_path / RUNS, tmp_path / RUNS_CSV, str(tmp_path / RUNS_INPUTS)
    metrics = tmp_path / run_metrics("d32-l1-t1")
    err = run_cli(capsys, "collect", "--params", str(params), "--runs-dir", str(runs), "--out", str(csv_path),
                  "--inputs-out", inputs)
    assert f"{metrics}: missing" in err and not csv_path.exists()

    metrics.parent.mkdir(parents=True)
    shutil.copy(out / RUN_METRICS, metrics)
    assert cli.main(["collect", "--params", str(params), "--runs-dir", str(runs), "--out", str(csv_path),
                     "--inputs-out", inputs]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 1 and rows[0]["run_id"] == "d32-l1-t1"
    assert float(rows[0]["loss"]) == m["val_loss"] and int(rows[0]["params"]) == 46176
    assert float(rows[0]["aspect_ratio"]) == 32.0 and float(rows[0]["multiplier"]) == 1.0

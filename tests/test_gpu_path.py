"""The GPU path, checked on CPU: the FSDP strategy and its wrapping, clipping and weight decay under sharded
parameters, the MFU peak per precision, the memory estimate against measured activations, and the head-dim
rule for the fused attention kernels."""
from __future__ import annotations

import multiprocessing
import types
from pathlib import Path

import pytest

from morph.core.artifacts.data import TOKENIZER_CONFIG, TOKENIZER_DIR
from morph.core.shape import Shape, swiglu_ffn
from morph.train.launch import Launch

FSDP_BF16 = Launch("gpu", "bf16-mixed", "fsdp")


def test_fsdp_wraps_each_decoder_layer_and_keeps_reduction_and_buffers_in_fp32():
    import torch
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from morph.train.launch import lightning_strategy

    strategy = lightning_strategy(FSDP_BF16)
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert set(policy._module_classes) == {LlamaDecoderLayer}
    mp = strategy.mixed_precision_config
    assert (mp.param_dtype, mp.reduce_dtype, mp.buffer_dtype) == (torch.float32,) * 3
    assert strategy.kwargs["use_orig_params"]


SHAPE = Shape(32, 2, 2, 2, swiglu_ffn(32, 16), 64)


def _batch():
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randint(0, SHAPE.vocab_size, (4, 16), generator=g), torch.randint(0, SHAPE.vocab_size, (4, 16),
                                                                                   generator=g)


def _optim():
    from morph.train.lm import Optim

    # A large lr and decay, so that a weight left out of decay moves visibly.
    return Optim(lr=0.05, betas=(0.9, 0.95), weight_decay=0.5, warmup_steps=1, total_steps=10, min_lr_ratio=0.1,
                 ema_decay=0.9, grad_clip=0.1)


def _fsdp_rank(rank: int, world: int, init: str, out: str) -> None:
    """One rank: CausalLM's optimiser and clipping on a model sharded as the FSDP strategy shards it."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from lightning.pytorch.plugins.precision import FSDPPrecision
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from morph.core.decoder import build_model
    from morph.train.launch import lightning_strategy
    from morph.train.lm import CausalLM
    from morph.train.run import save_model

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model = build_model(SHAPE, 32, 0, seed=0)
        module = CausalLM(model, _optim(), "test")
        strategy = lightning_strategy(FSDP_BF16)
        root = FSDP(model, device_id=torch.device("cpu"), mixed_precision=strategy.mixed_precision_config,
                    **strategy.kwargs)
        result = {"flat": [p.ndim for p in root.parameters()]}
        module.model = strategy.model = root
        module._trainer = types.SimpleNamespace(strategy=strategy, precision_plugin=FSDPPrecision("bf16-mixed"),
                                                gradient_clip_val=None, gradient_clip_algorithm=None)
        opt = module.configure_optimizers()["optimizer"]
        decayed = torch.tensor(sum(p.numel() for g in opt.param_groups if g["weight_decay"] for p in g["params"]))
        dist.all_reduce(decayed)
        result["decayed"] = int(decayed)
        inputs, targets = _batch()
        logits = root(input_ids=inputs, use_cache=False).logits
        F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()).backward()
        try:
            module.on_before_optimizer_step(opt)
        except Exception as err:  # what Lightning raises on a GPU, reported to the test
            result["clip_error"] = f"{type(err).__name__}: {err}"
        opt.step()
        with FSDP.summon_full_params(root):
            result["after"] = {n.replace("_fsdp_wrapped_module.", ""): p.detach().clone()
                               for n, p in root.named_parameters()}
        # Gathered from every rank's shard as Lightning gathers it (which also offloads to the CPU, on a GPU).
        whole = FullStateDictConfig(offload_to_cpu=False, rank0_only=True)
        with FSDP.state_dict_type(root, StateDictType.FULL_STATE_DICT, whole):
            state = root.state_dict()
        if rank == 0:
            torch.save(result, out)
            tokenizer = Path(out).parent / TOKENIZER_DIR
            tokenizer.mkdir()
            (tokenizer / TOKENIZER_CONFIG).write_text("{}")
            save_model(model, {f"model.{k}": v for k, v in state.items()}, tokenizer, Path(out).parent / "model",
                       context=16, card="a two-rank FSDP test model")
    finally:
        dist.destroy_process_group()


def test_fsdp_on_two_cpu_ranks_clips_and_decays_as_one_device(tmp_path):
    """Under FULL_SHARD every parameter is a flat 1-D shard when the optimiser is built: matrices must still be
    decayed, and the norm clipped over the whole gradient, giving one device's step; the gathered weights are
    saved as `morph train` saves them."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from morph.core.decoder import build_model

    ctx = multiprocessing.get_context("fork")
    init, out = f"file://{tmp_path}/init", tmp_path / "rank0.pt"
    ranks = [ctx.Process(target=_fsdp_rank, args=(r, 2, init, str(out))) for r in range(2)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(120)
    assert [p.exitcode for p in ranks] == [0, 0]
    sharded = torch.load(out)
    assert set(sharded["flat"]) == {1}  # the situation the optimiser must cope with
    model = build_model(SHAPE, 32, 0, seed=0)
    assert sharded["decayed"] == sum(p.numel() for p in model.parameters() if p.ndim >= 2)
    assert "clip_error" not in sharded

    # One device, written out here: decay on matrices, whole-gradient norm clipping, AdamW.
    o = _optim()
    inputs, targets = _batch()
    F.cross_entropy(model(input_ids=inputs, use_cache=False).logits.float().flatten(0, 1),
                    targets.flatten()).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=o.lr, betas=o.betas)
    opt.step()
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "model")  # what `morph train` writes under FSDP
    for name, p in model.named_parameters():
        torch.testing.assert_close(sharded["after"][name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(saved.get_parameter(name), p.detach(), rtol=1e-5, atol=1e-6, msg=name)


# Dense peaks read off NVIDIA's datasheets (the sparsity figures halved), per card and compute dtype.
@pytest.mark.parametrize("card,precision,flops", [
    ("NVIDIA H100 80GB HBM3", "bf16-mixed", 989e12),
    ("NVIDIA H100 80GB HBM3", "16-mixed", 989e12),
    ("NVIDIA H100 80GB HBM3", "32-true", 67e12),
    ("NVIDIA H100 NVL", "bf16-mixed", 835e12),
    ("NVIDIA H200 NVL", "16-mixed", 835e12),
    ("NVIDIA H200", "bf16-true", 989e12),
    ("NVIDIA H100 PCIe", "bf16-mixed", 756e12),
    ("NVIDIA A100-SXM4-80GB", "16-mixed", 312e12),
    ("NVIDIA A100-SXM4-80GB", "32-true", 19.5e12),
])
def test_mfu_peak_is_the_cards_peak_in_the_precisions_compute_dtype(monkeypatch, card, precision, flops):
    import torch

    from morph.train.flops import device_peak

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: card)
    peak = device_peak("cuda", precision)
    assert peak["flops"] == flops and card in peak["source"] and peak["precision"] == precision


def test_an_unknown_gpus_peak_is_measured_with_a_large_matmul(monkeypatch):
    import torch

    from morph.train import flops

    sizes = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA L40S")
    monkeypatch.setattr(flops, "matmul_peak_flops", lambda device, dtype, n: sizes.append((dtype, n)) or 1.0)
    peak = flops.device_peak("cuda", "16-mixed")
    [(dtype, n)] = sizes
    assert dtype == "float16" and n >= 4096 and "measured" in peak["source"]  # 1024^2 leaves an H100 underused


def _saved_bytes(model, inputs, autocast: bool) -> int:
    """Bytes of the distinct storages autograd saves for backward, parameters left out."""
    import torch
    import torch.nn.functional as F

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=inputs, use_cache=False).logits
        F.cross_entropy(logits.float().flatten(0, 1), inputs.flatten())
    return sum(kept.values())


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_activation_estimate_is_within_a_quarter_of_what_autograd_saves(precision):
    """Measured as the growth of the saved bytes from one sequence to two, so that what does not grow with the
    tokens (autocast's weight copies, the rotary tables) drops out."""
    import torch

    from morph.core.decoder import build_model
    from morph.train.launch import activation_bytes

    torch.manual_seed(0)
    for shape in (Shape(192, 3, 3, 3, 512, 256), Shape(512, 2, 4, 4, swiglu_ffn(512), 1024)):
        model = build_model(shape, 128, 0, seed=0)
        seq = 96
        one, two = (_saved_bytes(model, torch.randint(0, shape.vocab_size, (b, seq)), precision != "32-true")
                    for b in (1, 2))
        measured = two - one
        assert activation_bytes(shape, seq, precision) == pytest.approx(measured, rel=0.25), shape.shape_id


def test_paper_candidates_all_time_on_the_fused_attention_kernel(make_params):
    """16 heads make d4608's heads 288 wide, past the fused kernels' 256: refused on a GPU, by name, until
    model.max_head_dim gives that shape more heads; the parameter count does not change."""
    from conftest import ROOT
    from morph.core import experiment
    from morph.core.errors import MorphError

    paper = ROOT / "configs" / "paper.yaml"
    cfg = experiment.load(paper)
    assert cfg.latency.device == "cuda"
    for shape in (*cfg.candidate_shapes, cfg.baseline.shape):
        width = shape.d_model // shape.n_heads
        assert width <= 256 and width % 8 == 0, shape.shape_id
        assert shape.n_heads == 16 or shape.d_model / 16 > 256, shape.shape_id
    wide = {s.shape_id: s for s in cfg.candidate_shapes}["d4608-l4"]
    assert (wide.n_heads, wide.params()) == (18, 2 * 50432 * 4608 + 4 * (4 * 4608**2 + 3 * 4608 * wide.ffn
                                                                          + 2 * 4608) + 4608)
    with pytest.raises(MorphError, match=r"d4608-l4 \(4608 / 16 heads\) has a head dim 288 .* limit of 256.*"
                                         r"model.max_head_dim: 256"):
        experiment.load(make_params({"model.max_head_dim": None}, base=paper))
    experiment.load(make_params({"model.max_head_dim": None, "latency.device": "cpu"}, base=paper))  # no kernel to miss


def test_the_model_is_built_on_the_device_it_trains_on():
    """On a GPU each rank builds its model there: no rank holds the fp32 weights in host memory first."""
    import torch

    from morph.core.decoder import build_model

    before = torch.random.get_rng_state()
    on_meta = build_model(SHAPE, 32, 0, seed=0, device=torch.device("meta"))
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert torch.equal(torch.random.get_rng_state(), before)
    on_cpu = build_model(SHAPE, 32, 0, seed=0)
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}


@pytest.mark.parametrize("env,rank", [
    ({"LOCAL_RANK": "3", "NODE_RANK": "1"}, 3),
    ({"SLURM_NTASKS": "16", "SLURM_PROCID": "13", "SLURM_LOCALID": "5", "SLURM_JOB_NAME": "morph",
      "SLURM_NODELIST": "n1", "SLURM_JOB_ID": "1"}, 5),
])
def test_each_rank_builds_on_its_own_gpu(monkeypatch, env, rank):
    from morph.train.launch import local_rank

    for key in ("LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_JOB_NAME",
                "SLURM_NODELIST", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert local_rank(8) == rank


# What a GPU machine may lack: train and latency must run without any of it.
NOT_NEEDED = ("lm_eval", "snakemake", "dvc", "pandas", "scipy", "matplotlib", "datasets", "zstandard",
              "tensorboard", "accelerate", "threadpoolctl")


def python_without(root, names) -> str:
    """A python command whose packages are this one's but `names` (modules and distributions, as if never
    installed): site-packages seen through links that leave them out, and the interpreter's own site off."""
    import re
    import site
    import sys

    packages = root / "site-packages"
    packages.mkdir()
    for source in site.getsitepackages():
        for entry in Path(source).iterdir():
            project = re.split(r"[-.]", entry.name)[0].lower().replace("-", "_")
            if not project.startswith(names) and not (packages / entry.name).exists():
                (packages / entry.name).symlink_to(entry)
    python = root / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="$PYTHONPATH:{packages}" exec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    return str(python)


@pytest.mark.slow  # trains a model and times two: 60 s on the shared 2-core machine under a load of 8
def test_the_gpu_evidence_script_rehearsed_on_cpu(ci_tokens, tmp_path):
    """scripts/gpu_evidence.sh with configs/ci.yaml's shapes on CPU, without the packages train and latency do not
    need, morph run from the checkout: every step writes its rows; the static step, given 2 s for a compile that
    takes a minute on CPU, is recorded as timed out, and the steps after it still run."""
    import csv
    import json
    import os
    import subprocess
    import time

    from conftest import ROOT

    env = os.environ | {"EVIDENCE_REHEARSAL": "1", "EVIDENCE_OUT": str(tmp_path / "results"),
                        "PYTHON": python_without(tmp_path, NOT_NEEDED), "MORPH_TOKENS": str(ci_tokens),
                        "EVIDENCE_STATIC_S": "2"}
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_evidence.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    [json_path] = (tmp_path / "results").glob("gpu-cpu-*.json")
    doc = json.loads(json_path.read_text())
    statuses = {name: s["status"] for name, s in doc["steps"].items()}
    assert statuses == {"env": "ok", "train": "ok", "throughput": "ok", "latency": "ok", "static": "timeout",
                        "graph": "ok", "speedup": "ok"}, done.stdout[-3000:] + done.stderr[-3000:]
    with open(json_path.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(doc["rows"])
    assert all(r["device"] == "cpu" and r["torch"] and r["transformers"] and r["lightning"] and r["setting"]
               for r in rows)
    got = {(r["step"], r["shape"], r["metric"]): r["value"] for r in rows}
    assert got[("env", "d60-l2", "attention_kernels")].startswith("cpu")
    assert float(got[("train", "d32-l1-t0.25", "tokens_per_s")]) > 0
    for shape in ("d60-l2", "d32-l6"):
        assert float(got[("latency", shape, "full_median")]) > 0
    for loop in ("lightning", "plain"):
        assert float(got[("throughput", "d60-l2", f"{loop}_tokens_per_s")]) > 0
    speedup = float(got[("speedup", "d60-l2", "latency_speedup_over_d32-l6")])
    assert speedup == pytest.approx(float(got[("latency", "d32-l6", "full_median")])
                                    / float(got[("latency", "d60-l2", "full_median")]), rel=1e-2)
    print(f"rehearsal: {seconds:.1f} s")


def _evidence():
    import importlib
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module("gpu_evidence")


@pytest.mark.parametrize("plan", ["gpu", "rehearsal"])
def test_the_throughput_steps_held_out_stream_fills_one_batch_at_the_plans_micro_batch(plan):
    """On the H200 the held-out stream was 4 * seq_len tokens, one short of 4 windows of seq_len + 1. The
    rehearsal trains at the GPU plan's micro-batch, so that arithmetic fails on CPU where it fails on a GPU."""
    from morph.core.errors import MorphError
    from morph.train.batches import TokenStream, val_count

    evidence = _evidence()
    p = evidence.PLANS[plan]
    assert p["micro_batch"] == evidence.PLANS["gpu"]["micro_batch"]
    cfg, _ = evidence.load(p)
    t, _, data = evidence.throughput_data(cfg, p)
    seq_len = cfg.model.seq_len
    assert t.batch_size == p["micro_batch"]
    assert val_count(data.val, seq_len, t.val_batches, t.batch_size) == t.batch_size
    # And no longer than that: a token less leaves no whole batch (windows share their edge token).
    short = TokenStream([data.val.shards[0][:-1]])
    with pytest.raises(MorphError, match="less than one batch of held-out windows"):
        val_count(short, seq_len, t.val_batches, t.batch_size)


def test_the_gpu_evidence_script_fits_eight_minutes_by_its_timeouts():
    """Every step's limit and the grace before its kill, added up: the whole script's worst case."""
    import re

    from conftest import ROOT

    script = (ROOT / "scripts" / "gpu_evidence.sh").read_text()
    limits = [int(n) for n in re.findall(r"^step \w+ (\d+) ", script, re.M)]
    grace = int(re.search(r"^GRACE=(\d+)", script, re.M)[1])
    assert len(limits) == 7 and sum(limits) + grace * len(limits) <= 8 * 60


def test_evaluate_without_the_eval_extra_names_it(monkeypatch, tmp_path):
    import importlib.util

    from morph.core.errors import MorphError
    from morph.evaluate import score

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else found(name, *a))
    with pytest.raises(MorphError, match=r"needs lm-eval, an extra: pip install -e '.\[eval\]'"):
        score.evaluate(tmp_path, ["copa"], 64, tmp_path / "out")


def test_a_resumed_checkpoint_is_mapped_from_its_file_not_copied(tmp_path):
    """Every rank reads the checkpoint on resume: each must share the file's pages, not hold its own copy."""
    import torch

    from morph.train.checkpointing import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.arange(1024.0)}, "global_step": 3}, path)
    loaded = io.load_checkpoint(path)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(1024.0))
    # The tensor's memory lies in a mapping of the checkpoint file (Linux lists them in /proc/self/maps).
    ranges = [[int(x, 16) for x in line.split()[0].split("-")]
              for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(str(path))]
    address = loaded["state_dict"]["w"].data_ptr()
    assert any(lo <= address < hi for lo, hi in ranges)

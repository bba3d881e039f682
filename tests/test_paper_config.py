"""configs/paper.yaml expands to the paper's experiment, and Snakemake plans all of it."""
from __future__ import annotations

import pytest

from graphs import REPO, snakemake_jobs
from morph.core import experiment
from morph.core.artifacts.report import DECISION

PAPER = "configs/paper.yaml"


def paper_formula(d: int, layers: int, vocab: int = 50432) -> int:
    """The paper's count, written out independently of Shape: N = 2Vd + L(4d^2 + 3df + 2d) + d."""
    f = 256 * -(-int(8 * d / 3) // 256)
    return 2 * vocab * d + layers * (4 * d * d + 3 * d * f + 2 * d) + d


@pytest.fixture(scope="module")
def cfg():
    return experiment.load(REPO / PAPER)


def test_grid_sizes_are_the_papers_within_3_percent(cfg):
    rules = cfg.rules
    targets = [s.params for s in cfg.grid.sizes]
    assert targets[:5] == [80_000_000, 116_000_000, 164_000_000, 237_000_000, 313_000_000]
    for size in cfg.grid.sizes:
        assert len(size.depths) >= 5
        for depth in size.depths:
            shape = rules.propose(size.params, depth)
            assert abs(shape.params() / size.params - 1) < 0.03, shape.shape_id
            assert shape.params() == paper_formula(shape.d_model, shape.n_layers)
            # 16 heads, but more where they would be wider than 256 (model.max_head_dim)
            assert shape.n_heads == 16 or shape.d_model / 16 > 256 >= shape.head_dim
            assert shape.ffn % 256 == 0


def test_the_paper_grid_multipliers_and_candidates(cfg):
    runs = cfg.grid_runs
    assert len(runs) == 63
    assert {r.multiplier for r in runs} == {20, 40, 160}
    smallest = min(runs, key=lambda r: r.shape.params())
    over_trained = {r.shape.params() for r in runs if r.multiplier == 160}
    assert over_trained and max(over_trained) < 1e8  # only the smallest size at 160 N, as in the paper
    assert smallest.shape.vocab_size == 50432 and cfg.model.seq_len == 2048
    cands = {(s.d_model, s.n_layers): s.params() for s in cfg.candidate_shapes}
    assert set(cands) == {(2560, 16), (3072, 12), (3200, 10), (3328, 8), (4096, 6), (4608, 4)}
    for (d, layers), n in cands.items():
        assert n == paper_formula(d, layers)
    assert cands[(3072, 12)] == 1_668_885_504  # Morph-1B, FFN 8192
    base = cfg.baseline.shape
    assert (base.d_model, base.n_layers, base.ffn) == (2048, 24, 5632)


def test_snakemake_plans_the_whole_paper_experiment():
    cfg = experiment.load(REPO / PAPER)
    jobs = snakemake_jobs(PAPER, target=cfg.at(DECISION))  # in its own out_dir
    counts: dict[str, int] = {}
    for rule, _, _ in jobs.values():
        counts[rule] = counts.get(rule, 0) + 1
    assert counts["train"] == 63 + 1  # the grid and the (2048, 24) baseline at D_C
    assert counts["latency"] == len(cfg.latency_shapes)
    assert counts["train_target"] == 2 and counts["evaluate"] == 3
    sample_cmd = next(cmd for rule, cmd, _ in jobs.values() if rule == "sample")
    assert "--params configs/paper.yaml" in sample_cmd


def test_the_paper_training_runs_on_one_node_of_eight_80gb_gpus(cfg):
    """Nothing in train would be refused at run time on 8 H100s: devices, strategy, precision, batch split and
    memory per device for every shape it trains (by arithmetic)."""
    import dataclasses

    from morph.core.errors import MorphError
    from morph.train.launch import GIB, Machine, check, resolve, train_bytes_per_device

    t, seq_len = cfg.train, cfg.model.seq_len
    launch = resolve(t, cuda_available=True)
    assert (launch.accelerator, launch.precision, launch.strategy) == ("gpu", "bf16-mixed", "ddp")
    assert t.micro_batch * t.accumulation * t.world_size == t.batch_size == 256
    h100s = Machine(devices=8, kind="H100 80GB", memory=79 * GIB, ranks_started_outside=False)
    trained = {r.shape.shape_id: r.shape for r in (*cfg.grid_runs, cfg.baseline)}
    trained |= {s.shape_id: s for s in cfg.candidate_shapes}  # any of them may be a top-k slot
    for shape in trained.values():
        check(t, launch, h100s, shape, seq_len)
    largest = max(trained.values(), key=lambda s: train_bytes_per_device(s, seq_len, t, launch))
    assert largest.params() > 1.4e9 and train_bytes_per_device(largest, seq_len, t, launch) < 60 * GIB
    # the whole per-GPU share in one pass would not fit, and is refused by name
    whole = dataclasses.replace(t, micro_batch_size=None)
    with pytest.raises(MorphError, match="train.micro_batch_size: .* GiB per device"):
        check(whole, launch, h100s, largest, seq_len)

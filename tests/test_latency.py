"""The latency stage on real CPU measurements of the CI shapes, its bad inputs, and the latency model."""
from __future__ import annotations

import csv
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_params as write_ci_params
from morph import cli
from morph.core import experiment
from morph.core.artifacts.common import PARAMS, figure
from morph.core.artifacts.latency import LATENCY_CSV, LATENCY_DIR, LATENCY_FIGURE, LATENCY_MODEL, latency_json
from morph.core.errors import MorphError
from morph.core.shape import Shape, swiglu_ffn
from morph.latency import backends as latency_backends
from morph.latency import measure as latency
from morph.latency.cost_model import FEATURES, features, fit, leave_one_out, predict_latency

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def write_params(path: Path, **latency_keys) -> Path:
    """configs/ci.yaml with its latency section overridden."""
    return write_ci_params(path, {f"latency.{k}": v for k, v in latency_keys.items()})


def morph(*argv) -> int:
    return cli.main([str(a) for a in argv])


# The CI shapes the tests below name (the baseline d32-l6 among them), and the smallest CI shape, so that the
# latency model has more shapes than coefficients and its leave-one-out check runs.
NAMED = ("d40-l1", "d32-l2", "d64-l1", "d32-l6")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The CI latency shapes the tests name, and the smallest, each timed once with the hf backend: 16 prompt ->
    32 new tokens, 5 repetitions. configs/ci.yaml with its grid cut to those shapes (its candidate is one of them,
    its baseline d32-l6 as in the file): a few shapes give every number the tests check."""
    root = tmp_path_factory.mktemp("latency")
    ci = experiment.load(ROOT / "configs/ci.yaml")
    smallest = min(ci.latency_shapes, key=lambda s: s.params())
    grid = [ci.shape(i) for i in (smallest.shape_id, *NAMED) if i != ci.baseline.shape.shape_id]
    params = write_ci_params(root / PARAMS, {
        "grid": {"multipliers": [2], "shapes": [{"d_model": s.d_model, "n_layers": s.n_layers} for s in grid]},
        "select.params": ci.shape("d64-l1").params(), "select.depths": [1], "select.k": 1,
        "latency.backends": ["hf"], "latency.ttft": True, "latency.batch_sizes": [1], "latency.repeats": 5,
        "latency.warmup": 1})
    cfg = experiment.load(params)
    assert sorted(s.shape_id for s in cfg.latency_shapes) == sorted({smallest.shape_id, *NAMED})
    assert all(s == ci.shape(s.shape_id) for s in cfg.latency_shapes)  # the CI experiment's models, unchanged
    out = root / LATENCY_DIR
    for shape in cfg.latency_shapes:
        assert morph("latency", "--params", params, "--shape", shape.shape_id,
                     "--out", latency_json(shape.shape_id, out), "--no-progress") == 0
    return {"params": params, "cfg": cfg, "dir": out,
            "records": {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}}


def full_median(measured, shape_id: str, backend: str = "hf") -> float:
    return measured["records"][shape_id]["backends"][backend]["settings"]["full"]["median"]


def test_record_holds_every_sample_and_its_aggregates(measured):
    cfg = measured["cfg"]
    rec = measured["records"]["d32-l6"]
    shape = cfg.shape("d32-l6")
    assert rec["shape_id"] == "d32-l6" and rec["shape"]["params"] == shape.params()
    assert rec["shape"]["weight_bytes"] == shape.weight_bytes(4)
    assert rec["shape"]["kv_cache_bytes"] == shape.kv_cache_bytes(16 + 32, 1, 4)
    assert (rec["device"], rec["dtype"], rec["threads"]) == ("cpu", "float32", 1)
    assert rec["device_name"] == latency.cpu_model_name()
    assert rec["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert rec["versions"]["transformers"] and rec["versions"]["vllm"] is None
    assert len(rec["load_average"]["before"]) == 3 and len(rec["load_average"]["after"]) == 3
    assert str(measured["params"]) in rec["provenance"]["inputs"]

    settings = rec["backends"]["hf"]["settings"]
    assert set(settings) == {"full", "ttft", "decode_per_token", "throughput_b1"}
    for name, s in settings.items():
        samples = s["samples"]
        assert len(samples) == 5 and all(v > 0 for v in samples), name
        assert s["median"] == pytest.approx(statistics.median(samples))
        assert s["p10"] == pytest.approx(float(np.percentile(samples, 10)))
        assert s["p90"] == pytest.approx(float(np.percentile(samples, 90)))
        assert s["cv"] == pytest.approx(statistics.stdev(samples) / statistics.fmean(samples))
        # The decision statistic: the fastest round (the highest rate), the second fastest as its interval.
        ranked = sorted(samples, reverse=s["unit"] == "tokens/s")
        assert (s["best"], s["next_best"]) == (ranked[0], ranked[1]), name
    assert "best of interleaved rounds" in rec["setting"]["statistic"]
    judged = rec["load"]
    assert rec["disturbed"] is judged["disturbed"] is judged["attempts"][judged["kept_attempt"]]["disturbed"]
    assert judged["on_disturbed"] == "warn" and len(judged["attempts"]) == 1  # configs/ci.yaml: warn, never again
    assert len(judged["attempts"][0]["rounds_busy_cores"]) == 5
    assert judged["action"] == ("warned: kept the disturbed timing (latency.on_disturbed: warn)" if rec["disturbed"]
                                else "none: not disturbed")
    for name in ("full", "ttft"):  # measured settings carry process CPU time too; one thread cannot exceed wall
        s = settings[name]
        assert len(s["cpu_samples"]) == 5 and s["cpu_median"] == pytest.approx(statistics.median(s["cpu_samples"]))
        assert all(0 < c <= w * 1.05 for c, w in zip(s["cpu_samples"], s["samples"]))
    full, ttft = settings["full"]["samples"], settings["ttft"]["samples"]
    assert all(f > t for f, t in zip(full, ttft))  # 32 tokens take longer than the first one
    assert settings["decode_per_token"]["samples"] == pytest.approx([(f - t) / 31 for f, t in zip(full, ttft)])
    assert settings["throughput_b1"]["samples"] == pytest.approx([32 / f for f in full])
    assert settings["throughput_b1"]["unit"] == "tokens/s"


def test_exactly_new_tokens_greedy_and_seeded(measured, tmp_path):
    rec = measured["records"]["d40-l1"]
    assert len(rec["backends"]["hf"]["generated_tokens"]) == 32
    # Same params and seed -> same weights and prompt -> the same greedy tokens; batch 2 runs too.
    params = write_params(tmp_path / "p.yaml", backends=["hf"], ttft=False, batch_sizes=[1, 2], repeats=2, warmup=0)
    assert morph("latency", "--params", params, "--shape", "d40-l1", "--out", tmp_path / "d40-l1.json",
                 "--no-progress") == 0
    again = json.loads((tmp_path / "d40-l1.json").read_text())["backends"]["hf"]
    assert again["generated_tokens"] == rec["backends"]["hf"]["generated_tokens"]
    assert set(again["settings"]) == {"full", "full_b2", "throughput_b1", "throughput_b2"}
    assert again["settings"]["full_b2"]["batch"] == 2
    assert again["settings"]["throughput_b2"]["samples"] == pytest.approx(
        [2 * 32 / s for s in again["settings"]["full_b2"]["samples"]])


def test_a_backend_that_returns_the_wrong_length_is_refused():
    with pytest.raises(MorphError, match=r"shape \(1, 40\), expected \(1, 48\)"):
        latency._check_output(torch.zeros(1, 40), 1, 16, 32, "hf")


def test_done_when_depth_drives_latency(measured):
    """Timed in interleaved rounds, so load from other work on the machine falls on every shape alike;
    each round's ratio is on process CPU time, which does not count time spent waiting for a core."""
    cfg = measured["cfg"]
    prompt = torch.randint(0, cfg.vocab_size, (1, cfg.latency.prompt_len),
                           generator=torch.Generator().manual_seed(0))
    names = ("d32-l2", "d32-l6", "d64-l1")
    backends = {n: latency_backends.make("hf", latency.timed_model(cfg.shape(n), cfg, torch.device("cpu"),
                                                                     torch.float32), 64, 0) for n in names}
    cpu = {n: [] for n in names}
    for _ in range(12):
        for n in names:
            start = time.process_time()
            backends[n].generate(prompt, cfg.latency.new_tokens)
            cpu[n].append(time.process_time() - start)

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(cpu[a], cpu[b]))

    # At fixed d_model = 32, six layers take longer than two.
    assert ratio("d32-l6", "d32-l2") > 1.3, cpu
    # At about equal N (113k vs 116k), wide-and-shallow beats deep-and-narrow.
    deep, wide = cfg.shape("d32-l6"), cfg.shape("d64-l1")
    assert abs(deep.params() - wide.params()) / wide.params() < 0.05
    assert ratio("d32-l6", "d64-l1") > 1.3, cpu


def _expect_refusal(capsys, tmp_path, message: str, shape: str = "d40-l1", **latency_keys):
    params = write_params(tmp_path / "bad.yaml", **latency_keys)
    out = Path(latency_json(shape, tmp_path / LATENCY_DIR))
    assert morph("latency", "--params", params, "--shape", shape, "--out", out, "--no-progress") == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not list(out.parent.glob(".*.tmp"))


def test_prompt_plus_output_longer_than_positions(capsys, tmp_path):
    """Refused by the experiment loader, so before any job starts."""
    _expect_refusal(capsys, tmp_path, "latency.new_tokens: prompt_len 100 + new_tokens 64 exceeds "
                    "model.max_position_embeddings=128", prompt_len=100, new_tokens=64)


def test_float16_on_cpu_is_refused(capsys, tmp_path):
    _expect_refusal(capsys, tmp_path, "latency.dtype: float16 on cpu is refused", dtype="float16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_bfloat16_on_cuda_without_cuda(capsys, tmp_path):
    _expect_refusal(capsys, tmp_path, "latency.device: 'cuda' but torch sees no CUDA device",
                    device="cuda", dtype="bfloat16")


def test_unknown_backend(capsys, tmp_path):
    _expect_refusal(capsys, tmp_path, "latency.backends[1]: 'tensorrt' is not one of", backends=["hf", "tensorrt"])
    with pytest.raises(MorphError, match="unknown backend 'tensorrt'"):
        latency_backends.check_available("tensorrt", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_vllm_on_cpu_is_refused_before_any_timing(capsys, tmp_path):
    # hf comes first and would succeed: nothing of it may be written either.
    _expect_refusal(capsys, tmp_path, "vllm backend needs a CUDA device and the vllm package; "
                    "latency.device is 'cpu'", backends=["hf", "vllm"])


def test_unknown_shape(capsys, tmp_path):
    _expect_refusal(capsys, tmp_path, "--shape: shape id 'd999-l9' is not in the experiment", shape="d999-l9")


def _synthetic_shapes(cfg):
    rules = cfg.rules
    return [rules.build(d, n) for d in (32, 64, 96, 128) for n in (1, 2, 4, 8)]


def test_latency_model_recovers_known_coefficients():
    cfg = experiment.load(ROOT / "configs/ci.yaml")
    shapes = _synthetic_shapes(cfg)
    truth = np.array([0.02, 0.004, 3e-9, 2e-7])
    x = np.array([features(s, 48, 4) for s in shapes])
    y = x @ truth
    assert fit(x, y) == pytest.approx(truth, rel=1e-6)
    assert max(leave_one_out(x, y)) < 1e-6
    # 2% multiplicative noise: held-out shapes are still predicted within a few percent.
    noisy = y * (1 + 0.02 * np.random.default_rng(0).standard_normal(len(y)))
    assert np.mean(leave_one_out(x, noisy)) < 0.05
    model = {"models": [{"device": "cpu", "backend": "hf", "prompt_len": 16, "new_tokens": 32, "bytes_per_value": 4,
                         "coefficients": dict(zip(FEATURES, truth))}]}
    unseen = cfg.rules.build(200, 3)
    assert predict_latency(model, unseen) == pytest.approx(float(np.dot(features(unseen, 48, 4), truth)))
    with pytest.raises(MorphError, match="no fit for backend 'static'"):
        predict_latency(model, unseen, backend="static")


def test_collect_csv_model_and_figure(measured, tmp_path, capsys):
    table, model_out, fig = tmp_path / LATENCY_CSV, tmp_path / LATENCY_MODEL, tmp_path / figure(LATENCY_FIGURE)
    assert morph("latency-collect", "--params", measured["params"], "--latency-dir", measured["dir"],
                 "--out", table, "--model-out", model_out, "--figure", fig) == 0
    print(capsys.readouterr().out)
    rows = list(csv.DictReader(open(table)))
    shapes = experiment.load(measured["params"]).latency_shapes
    assert len(rows) == len(shapes) * 4  # shapes x (full, ttft, decode_per_token, throughput_b1)
    row = next(r for r in rows if r["shape_id"] == "d64-l1" and r["setting"] == "full")
    assert float(row["median"]) == pytest.approx(full_median(measured, "d64-l1"))
    rec = measured["records"]["d64-l1"]
    assert float(row["best"]) == pytest.approx(min(rec["backends"]["hf"]["settings"]["full"]["samples"]))
    assert row["disturbed"] == str(rec["disturbed"]) and row["load_action"] == rec["load"]["action"]
    assert float(row["others_busy_cores"]) >= 0
    assert (row["d_model"], row["n_layers"], row["aspect_ratio"]) == ("64", "1", "64.0")

    model = json.loads(model_out.read_text())
    (fitted,) = model["models"]
    assert (fitted["device"], fitted["backend"], len(fitted["shapes"])) == ("cpu", "hf", len(shapes))
    # The fit carries depth: at d_model 32, six layers are predicted slower than two.
    l2, l6 = (measured["cfg"].shape(s) for s in ("d32-l2", "d32-l6"))
    assert predict_latency(model, l6) > predict_latency(model, l2)
    loo = fitted["loo"]
    assert 0 <= loo["mean_rel_error"] <= loo["max_rel_error"] and set(loo["per_shape"]) == set(measured["records"])
    print(f"LOO on measured CI shapes: mean {loo['mean_rel_error']:.1%}, max {loo['max_rel_error']:.1%}")
    assert set(model["provenance"]["inputs"]) >= {latency_json(s, measured["dir"]) for s in measured["records"]}
    # The prediction for a measured shape is the fit's, within its in-sample error.
    d64 = measured["cfg"].shape("d64-l1")
    rel = abs(predict_latency(model_out, d64) - full_median(measured, "d64-l1"))
    assert rel / full_median(measured, "d64-l1") <= fitted["fit_rel_error"]["max"] + 1e-9
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_refuses_a_measurement_of_another_shape(measured, tmp_path, capsys):
    stale = tmp_path / "latency"
    shutil.copytree(measured["dir"], stale)
    shutil.copy(stale / "d40-l1.json", stale / "d32-l2.json")
    assert morph("latency-collect", "--params", measured["params"], "--latency-dir", stale,
                 "--out", tmp_path / "l.csv", "--model-out", tmp_path / "m.json", "--figure", tmp_path / "f.png") == 2
    assert "d32-l2.json: measured a different model than the experiment's d32-l2" in capsys.readouterr().err
    assert not (tmp_path / "l.csv").exists() and not (tmp_path / "m.json").exists()


def hf_beside(tmp_path, backend: str, repeats: int) -> dict:
    """d40-l1's latency record's backends, `backend` timed beside hf: 8 prompt tokens, 8 new, batches 1 and 2."""
    params = write_params(tmp_path / "p.yaml", backends=["hf", backend], prompt_len=8, new_tokens=8,
                          ttft=True, batch_sizes=[1, 2], repeats=repeats, warmup=1)
    assert morph("latency", "--params", params, "--shape", "d40-l1", "--out", tmp_path / "d40-l1.json",
                 "--no-progress") == 0
    return json.loads((tmp_path / "d40-l1.json").read_text())["backends"]


@pytest.mark.slow  # inductor compiles the decode step: ~10 s with a warm cache, about a minute cold
def test_static_backend_compiles_and_generates_the_same_tokens(tmp_path):
    # Two batch sizes interleaved in every repetition: each keeps its cache, so nothing compiles while timed.
    rec = hf_beside(tmp_path, "static", repeats=3)
    static = rec["static"]
    assert static["details"]["compiled"] and static["details"]["cache"].startswith("static")
    assert static["details"]["warmup_events"]["compilations"] >= 1
    assert static["details"]["timed_events"] == {"compilations": 0, "cuda_graph_recordings": 0}
    assert static["settings"]["full_b2"]["median"] > 0
    assert len(static["generated_tokens"]) == 8 and len(static["settings"]["full"]["samples"]) == 3
    # The first call compiled; timed calls are far faster than it.
    assert static["settings"]["full"]["median"] * 5 < static["first_call_s"]["full"]
    assert static["generated_tokens"] == rec["hf"]["generated_tokens"]


# The oldest transformers pyproject allows, and a GPU machine's own (where `generate` took no `cache=`), each with
# the hub and tokenizers it needs, installed beside .venv by scripts/bootstrap.sh.
COMPAT = ROOT / ".venv" / "transformers-compat"
STATIC_ON = """
import torch
from morph.latency.backends import HFBackend, StaticBackend
from morph.core.decoder import build_model
from morph.core.shape import Shape, swiglu_ffn

torch.set_num_threads(1)
model = build_model(Shape(32, 2, 2, 2, swiglu_ffn(32, 16), 64), 64, None, seed=0).eval()
prompt = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(0))
static = StaticBackend(model, 16)
with torch.inference_mode():
    first, again = static.generate(prompt, 8), static.generate(prompt, 8)
    static.check_ready()
    assert torch.equal(first, again) and torch.equal(first, HFBackend(model).generate(prompt, 8)), (first, again)
import transformers
print(transformers.__version__)
"""


@pytest.mark.slow  # inductor compiles the decode step: about 20 s a version
@pytest.mark.parametrize("version", ["4.57.6", "5.17.0"])
def test_static_backend_runs_on_the_oldest_and_a_gpu_machines_transformers(version):
    """pyproject's floor: a static cache made and reused, the decode step compiled, hf's greedy tokens."""
    import os
    import subprocess
    import sys

    target = COMPAT / version
    if not target.is_dir():
        pytest.skip(f"{target} is missing: scripts/bootstrap.sh installs it")
    env = os.environ | {"PYTHONPATH": f"{target}:{ROOT / 'src'}"}
    done = subprocess.run([sys.executable, "-c", STATIC_ON], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == version


def test_static_backend_refuses_a_transformers_below_its_floor(monkeypatch):
    from packaging.version import Version

    monkeypatch.setattr(latency_backends, "_transformers_version", lambda: Version("4.44.2"))
    with pytest.raises(MorphError, match=r"static backend needs transformers>=4\.57 .* has 4\.44\.2; "
                                         r"pip install 'transformers>=4\.57' or remove 'static' from latency.backends"):
        latency_backends.check_available("static", "cpu")
    latency_backends.check_available("hf", "cpu")


@pytest.mark.parametrize("shape", [
    Shape(64, 2, 4, 4, swiglu_ffn(64, 32), 512),
    Shape(96, 3, 6, 2, swiglu_ffn(96, 32), 1024),  # grouped-query: each kv head serves three heads
], ids=lambda s: f"{s.shape_id}-kv{s.n_kv_heads}")
def test_graph_backend_decodes_hfs_greedy_tokens_exactly(shape):
    """Our loop over a static cache against plain `generate`, at two batch sizes, each called again on other
    prompts: the cache slots the first call left behind must not leak into the second."""
    from morph.core.decoder import build_model
    from morph.latency.backends import HFBackend

    model = build_model(shape, 128, None, seed=0).eval()
    graph = latency_backends.make("graph", model, 16 + 40, 0)
    hf = HFBackend(model)
    gen = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for batch in (1, 2, 1, 2):
            prompt = torch.randint(0, shape.vocab_size, (batch, 16), generator=gen)
            expected = hf.generate(prompt, 40)
            assert torch.equal(graph.generate(prompt, 40), expected), (shape.shape_id, batch)
    graph.check_ready()
    graph.check_timed()


def test_graph_backend_in_a_latency_record(tmp_path):
    rec = hf_beside(tmp_path, "graph", repeats=2)
    assert rec["graph"]["generated_tokens"] == rec["hf"]["generated_tokens"]
    assert rec["graph"]["details"]["cuda_graphs"] is False and rec["graph"]["settings"]["full_b2"]["median"] > 0


def test_the_decision_statistic_on_the_issues_busy_samples():
    """d80-l3 and d72-l4 as timed beside other work (issue 30): their medians put the 3-layer shape behind, their
    fastest rounds do not, and the intervals to the second fastest overlap: not ordered."""
    from morph.latency.stats import summarize

    d80, d72 = summarize([0.836, 0.707, 1.123, 0.783, 0.763]), summarize([0.984, 0.703, 0.738, 0.730, 0.692])
    assert d80["median"] > d72["median"]
    assert (d80["best"], d80["next_best"], d72["best"], d72["next_best"]) == (0.707, 0.763, 0.692, 0.703)
    assert summarize([10.0, 30.0, 20.0], higher_is_better=True)["best"] == 30.0
    assert summarize([1.0])["next_best"] is None


class _Recorder:
    """A backend that generates instantly and notes every call."""

    warmup = 0

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def generate(self, prompt, new):
        self.calls.append((self.name, prompt.shape[0], new))
        return torch.zeros(prompt.shape[0], prompt.shape[1] + new, dtype=torch.long)

    def details(self):
        return {}

    def check_ready(self):
        pass

    def check_timed(self):
        pass


def _lat(tmp_path, **keys):
    return experiment.load(write_params(tmp_path / "p.yaml", prompt_len=4, new_tokens=3, **keys)).latency


def _time(lat, calls):
    backends = {n: _Recorder(n, calls) for n in ("a", "b")}
    prompts = {b: torch.zeros(b, 4, dtype=torch.long) for b in (1, 2)}
    return latency.time_backends(backends, prompts, lat, torch.device("cpu"), "d40-l1", False)


def test_rounds_interleave_every_backend_and_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(latency.load, "busy_over", lambda s: 0.0)
    calls = []
    lat = _lat(tmp_path, ttft=True, batch_sizes=[1, 2], repeats=3, warmup=1)
    _time(lat, calls)
    one_round = [("a", 1, 3), ("a", 1, 1), ("a", 2, 3), ("b", 1, 3), ("b", 1, 1), ("b", 2, 3)]
    warm = [c for c in one_round if c[0] == "a"] + [c for c in one_round if c[0] == "b"]
    assert calls == warm + one_round * 3


@pytest.mark.parametrize("policy,busy,action", [
    ("warn", [2.0], "warned: kept the disturbed timing (latency.on_disturbed: warn)"),
    ("retry", [2.0, 0.1], "timed again after 1 disturbed attempt(s); kept attempt 2, not disturbed"),
    ("retry", [2.0, 1.5, 3.0], "timed 3 times, every attempt disturbed; kept the least disturbed, attempt 2"),
    ("retry", [0.1], "none: not disturbed"),
])
def test_a_disturbed_timing_is_warned_about_or_timed_again(tmp_path, monkeypatch, capsys, policy, busy, action):
    """Other processes' busy cores in each attempt (before and during it), as the machine would report them; on
    this experiment's 1 thread, half of the cores left free is the limit."""
    import os

    attempt = iter(busy)
    now = {}
    monkeypatch.setattr(latency.load, "busy_over", lambda s: now.update(busy=next(attempt)) or now["busy"])
    monkeypatch.setattr(latency.load, "others_busy_cores", lambda mark: now["busy"])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    lat = _lat(tmp_path, on_disturbed=policy, retries=2, disturbed_at=0.5, threads=1)
    _, verdict = _time(lat, [])
    assert verdict["limit_busy_cores"] == 0.5
    assert [a["busy_cores"] for a in verdict["attempts"]] == busy and verdict["action"] == action
    assert verdict["disturbed"] == ("every" in action or "warned" in action)
    assert ("warning: d40-l1" in capsys.readouterr().err) == verdict["disturbed"]


def test_a_disturbed_timing_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(latency.load, "busy_over", lambda s: 1.9)
    lat = _lat(tmp_path, on_disturbed="refuse", disturbed_at=0.5, threads=1)
    with pytest.raises(MorphError, match=r"latency.on_disturbed is refuse, and other processes kept 1.90 of .* "
                                         r"busy just before d40-l1 was timed, over latency.disturbed_at .*"
                                         r"set latency.on_disturbed to retry or warn"):
        _time(lat, [])


def test_busy_processes_beside_a_timing_mark_it_disturbed(tmp_path):
    """Real neighbours: two spinning processes per core, far more than the half of the free cores allowed."""
    import os
    import subprocess
    import sys

    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * os.cpu_count())]
    try:
        time.sleep(0.3)
        _, verdict = _time(_lat(tmp_path, on_disturbed="warn", repeats=3), [])
    finally:
        for p in spin:
            p.kill()
            p.wait()
    kept = verdict["attempts"][0]
    assert verdict["disturbed"] and kept["before_busy_cores"] > verdict["limit_busy_cores"]
    assert kept["before_busy_cores"] <= os.cpu_count() + 0.1


def test_on_disturbed_takes_three_answers(tmp_path):
    with pytest.raises(MorphError, match=r"latency.on_disturbed: 'ignore' is not one of \['warn', 'retry', 'refuse'\]"):
        _lat(tmp_path, on_disturbed="ignore")

"""Progress a person can read: the last tqdm state parsed from real tqdm output, the time-left arithmetic checked
against a computation made here, the console monitor on a stand-in Snakemake, and lm-eval's truncation warning
counted once instead of printed per request."""
from __future__ import annotations

import importlib.util
import io
import logging
import re
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tqdm

from morph.evaluate import score
from morph.workflow import progress

ROOT = Path(__file__).resolve().parents[1]


def tqdm_text(stop: int, total: int | None = 200, desc: str | None = None, **kw) -> str:
    """What tqdm writes to a log for a loop stopped after `stop` of `total` items."""
    out = io.StringIO()
    bar = tqdm.tqdm(total=total, file=out, desc=desc, mininterval=0, miniters=1, **kw)
    for _ in range(stop):
        bar.update(1)
    out.write("\n")  # what a job prints next starts on its own line; tqdm leaves the bar open
    return out.getvalue()


def test_last_bar_of_real_tqdm_output():
    text = tqdm_text(90, 200, desc="Running loglikelihood requests")
    assert "\r" in text  # updates overwrite each other in place
    bar = progress.last_bar(text)
    assert (bar.desc, bar.n, bar.total, bar.fraction) == ("Running loglikelihood requests", 90, 200, 0.45)
    assert bar.elapsed_s is not None and bar.elapsed_s >= 0

    # Other output between and after updates (a warning on its own line) does not hide the bar.
    text = tqdm_text(3, 10) + "a warning\n" + tqdm_text(7, 10, desc="Epoch 0") + "Writing model\n"
    bar = progress.last_bar(text)
    assert (bar.desc, bar.n, bar.total) == ("Epoch 0", 7, 10)

    # A bar without a total counts only; no bar at all is None.
    bar = progress.last_bar(tqdm_text(1327, None, desc="index documents", unit="doc"))
    assert (bar.desc, bar.n, bar.total, bar.fraction, bar.remaining_s) == ("index documents", 1327, None, None, None)
    assert progress.last_bar("GPU available: False\nmorph train: done\n") is None


def test_last_bar_of_lightnings_format():
    """Lightning's training bar: its own bar_format (read from its source, not imported: that takes seconds)."""
    source = Path(importlib.util.find_spec("lightning").origin).parent / "pytorch/callbacks/progress/tqdm_progress.py"
    bar_format = re.search(r'BAR_FORMAT = "([^"]+)"', source.read_text()).group(1)
    out = io.StringIO()
    bar = tqdm.tqdm(total=293, file=out, desc="Epoch 0", bar_format=bar_format, mininterval=0, miniters=1)
    for _ in range(148):
        bar.update(1)
    bar.set_postfix({"v_num": 0, "train_loss": 3.91})
    parsed = progress.last_bar(out.getvalue())
    assert (parsed.desc, parsed.n, parsed.total) == ("Epoch 0", 148, 293)


def test_bar_clocks_and_scaled_counts():
    bar = progress.parse_bar("Epoch 3:  45%|####5     | 1.2k/2.4k [1:02:03<00:12, 8.90it/s, loss=3.1]")
    assert (bar.desc, bar.n, bar.total, bar.elapsed_s, bar.remaining_s) == ("Epoch 3", 1200, 2400, 3723, 12)
    assert progress.parse_bar("  0%|          | 0/200 [00:00<?, ?it/s]").remaining_s is None
    assert [progress.clock(s) for s in (45, 723, 3723)] == ["0:45", "12:03", "1:02:03"]
    assert [progress.about(s) for s in (20, 480, 7500)] == ["<1 min", "~8 min", "~2 h 05 min"]


def test_benchmark_seconds_of_snakemakes_own_file(tmp_path):
    from snakemake.benchmark import BenchmarkRecord, write_benchmark_records

    path = tmp_path / "b.tsv"
    write_benchmark_records([BenchmarkRecord(running_time=31.15), BenchmarkRecord(running_time=28.85)], str(path),
                            False)
    assert progress.benchmark_seconds(progress.tail(path)) == pytest.approx(30.0)
    assert progress.benchmark_seconds("") is None
    assert progress.tail(tmp_path / "missing.log") == ""


def test_fit_is_least_squares_kept_non_negative():
    rng = np.random.default_rng(0)
    cost = rng.uniform(1e9, 9e9, 12)
    seconds = 7.0 + 4e-9 * cost + rng.normal(0, 0.5, 12)
    f = progress.fit(zip(cost, seconds))
    slope, intercept = np.polyfit(cost, seconds, 1)
    assert (f.slope, f.intercept, f.jobs) == (pytest.approx(slope), pytest.approx(intercept), 12)

    # A negative intercept: the line through the origin instead (least squares without an intercept).
    cost, seconds = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0])  # the free line is 2c - 1
    f = progress.fit(zip(cost, seconds))
    through_origin = np.linalg.lstsq(cost[:, None], seconds, rcond=None)[0][0]
    assert (f.intercept, f.slope) == (0.0, pytest.approx(through_origin))
    # A negative slope (the bigger job ran faster): the mean.
    assert progress.fit([(1.0, 10.0), (2.0, 6.0)]) == progress.Fit(8.0, 0.0, 2)
    # One distinct cost: seconds proportional to cost; jobs costing 1 get their mean.
    assert progress.fit([(1.0, 30.0), (1.0, 50.0)]).seconds(1.0) == 40.0
    assert progress.fit([(2e9, 10.0)]).seconds(6e9) == pytest.approx(30.0)
    assert progress.fit([]) is None


def test_time_left_against_a_hand_computation():
    history = [("train", 1e9, 10.0), ("train", 3e9, 20.0),  # 5 s + 5 s per 1e9 FLOPs
               ("evaluate", 1.0, 30.0), ("evaluate", 1.0, 50.0),  # 40 s each
               ("latency", 1.0, 8.0)]
    by_rule = progress.fits(history)
    waiting = [progress.Planned("train", "big", 5e9), progress.Planned("evaluate", "a"),
               progress.Planned("evaluate", "b"), progress.Planned("latency", "s", width=float("inf"))]
    running = progress.Planned("train", "mid", 2e9)
    bar = progress.Bar("Epoch 0", 60, 100, 6.0, 4.0)
    left = progress.left_s(running, 6.0, bar, by_rule)
    assert left == 15 - 6  # expected 5 + 10 = 15 s less 6 so far; more than the bar's 4 s
    untimed = progress.Planned("collect", "")
    o = progress.outlook(waiting, [(running, left), (untimed, None)], done=3, total=9, by_rule=by_rule, slots=2)
    # Work left in core-seconds: train 5 + 25, evaluate 40 + 40, latency 8 on both cores, the running train's 9.
    work = (5 + 25) + 40 + 40 + 8 * 2 + 9
    assert o.eta_s == pytest.approx(work / 2)
    assert (o.done, o.total, o.running, o.untimed) == (3, 9, 2, {"collect": 1})
    assert progress.graph_line(o) == "progress: graph: 3/9 jobs done, 2 running, ETA ~1 min + 1 jobs not yet timed " \
                                     "(1 collect)"
    # Never less than the longest job left, however many cores.
    assert progress.outlook(waiting, [], 0, 4, by_rule, slots=64).eta_s == 40.0
    assert progress.outlook([untimed], [], 0, 1, by_rule, 2).eta_s is None
    assert progress.job_line(running, 6.0, bar, left) == "progress: train[mid] Epoch 0 60% 60/100 | 0:06 so far, " \
                                                         "~0:09 left"


def test_training_cost_is_the_runs_flops():
    from morph.core import experiment
    from morph.train.flops import train_flops_per_token

    exp = experiment.load(ROOT / "configs" / "ci.yaml")
    cost = progress.training_flops(exp)
    run = exp.grid_runs[0]
    assert cost("train", {"run_id": run.run_id}) == train_flops_per_token(run.shape, exp.model.seq_len) * run.tokens
    assert cost("train_target", {"slot": "top-1"}) is None  # its shape comes from the selection at run time
    assert cost("evaluate", {"model": run.run_id}) is None


class FakeJob:
    def __init__(self, rule, key, folder, threads=1, machine=1):
        self.rule = SimpleNamespace(name=rule)
        self.wildcards_dict = {"key": key}
        self.log = [str(folder / f"{rule}-{key}.log")]
        self.benchmark = str(folder / f"{rule}-{key}.tsv")
        self.threads = threads
        self.resources = {"machine": machine}


def fake_workflow(planned, finished, running, **kw):
    dag = SimpleNamespace(needrun_jobs=lambda: iter(planned), jobs=list(planned), finished=lambda j: j in finished)
    return SimpleNamespace(is_main_process=True, dryrun=False, touch=False, local_exec=True,
                           global_resources={"_cores": 2, "machine": 100}, dag=dag,
                           scheduler=SimpleNamespace(running=set(running)), **kw)


def test_monitor_on_a_stand_in_snakemake(tmp_path):
    from snakemake.benchmark import BenchmarkRecord, write_benchmark_records

    done, running, waiting, timing = (FakeJob("train", "a", tmp_path), FakeJob("train", "b", tmp_path),
                                      FakeJob("train", "c", tmp_path), FakeJob("latency", "s", tmp_path, machine=100))
    write_benchmark_records([BenchmarkRecord(running_time=60.0)], done.benchmark, False)
    Path(running.log[0]).write_text("GPU available: False\n" + tqdm_text(90, 200, desc="Epoch 0"))
    costs = {"a": 1e9, "b": 1e9, "c": 3e9}
    workflow = fake_workflow([done, running, waiting, timing], {done}, {running})
    out = io.StringIO()
    monitor = progress.Monitor(workflow, lambda rule, wc: costs.get(wc["key"]) if rule == "train" else None,
                               every_s=0.05, stream=out, exclusive=("machine", 100))
    monitor.start()
    deadline = time.monotonic() + 10
    while "graph:" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    monitor.stop()
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"progress: train\[b\] Epoch 0 45% 90/200 \| 0:0\d so far, ~\d:\d\d left", lines[0])
    # One train timed (60 s for 1e9 FLOPs): the waiting 3e9 one ~180 s; the timing job never ran here.
    assert lines[1] == "progress: graph: 1/4 jobs done, 1 running, ETA ~3 min + 1 jobs not yet timed (1 latency)"
    assert monitor.slots == 2 and monitor._planned[timing].width == float("inf")

    # Nothing starts for a dry run, --touch or MORPH_PROGRESS_S=0.
    for quiet in ({"dryrun": True}, {"touch": True}):
        m = progress.Monitor(SimpleNamespace(**{**vars(fake_workflow([], set(), set())), **quiet}), every_s=30)
        m.start()
        assert m._thread is None
    assert progress.interval({"MORPH_PROGRESS_S": "0"}) == 0 and progress.interval({}) == 30
    with pytest.raises(ValueError, match="MORPH_PROGRESS_S"):
        progress.interval({"MORPH_PROGRESS_S": "often"})


LM_EVAL_HF = "lm_eval.models.huggingface"


def truncation_warning(context: int, continuation: int, max_length: int) -> str:
    """lm-eval's warning, word for word (checked against its source below)."""
    total = context + continuation
    return (f"Combined length of context ({context}) and continuation ({continuation}) "
            f"exceeds model's maximum length ({max_length}). "
            f"Truncating {total - max_length + 1} tokens from the left.")


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None, reason="lm-eval is an extra")
def test_lm_eval_truncation_warning_is_counted_once():
    source = (Path(importlib.util.find_spec("lm_eval").origin).parent / "models" / "huggingface.py").read_text()
    assert "eval_logger = logging.getLogger(__name__)" in source  # the logger below is the one lm-eval warns on
    for fragment in ('f"Combined length of context ({len(context_enc)}) and continuation ({len(continuation_enc)}) "',
                     "f\"exceeds model's maximum length ({self.max_length}). \"",
                     'f"Truncating {total_length - self.max_length + 1} tokens from the left."'):
        assert fragment in source
    logger = logging.getLogger(LM_EVAL_HF)
    out = io.StringIO()
    with score.counted_repeats(out):
        for i in range(800):
            logger.warning(truncation_warning(70 + i % 50, 1 + i % 7, 64))  # a context of 70 to 119 tokens
        logger.warning("Passed argument batch_size = auto. Detecting largest batch size")  # once: shown, no count
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for n in range(3):
                warnings.warn(f"{n} items were too long", UserWarning, stacklevel=1)
    lines = out.getvalue().splitlines()
    assert lines[0] == truncation_warning(70, 1, 64)
    assert lines[1].startswith("Passed argument batch_size")
    assert sum("UserWarning: 0 items were too long" in line for line in lines) == 1  # the first, with its source
    assert sum("Combined length" in line for line in lines) == 2
    assert (f"WARNING {LM_EVAL_HF}: Combined length of context (N) and continuation (N) exceeds model's maximum "
            f"length (N). Truncating N tokens from the left. (logged 800 times, numbers aside; only the first is "
            "shown above)") in lines
    assert any(line.startswith("WARNING py.warnings:") and line.endswith(
        "UserWarning: N items were too long (logged 3 times, numbers aside; only the first is shown above)")
        for line in lines)
    assert len(lines) == 7  # 2 lm-eval warnings, a Python warning (2 lines and a blank), 2 counts
    # Afterwards logging is as it was: no handler left on the root, Python's warnings no longer logged.
    assert not any(isinstance(h.filters[0] if h.filters else None, score.Repeats) for h in logging.getLogger().handlers)
    assert warnings.showwarning is not logging._showwarning

"""Orchestration costs on a finished CI tree: no-op planning in both tools, planning the paper's
graph, a DVC run-cache restore against retraining, and how many jobs one shape's change reruns.

    python benchmarks/pipeline.py --tree /path/to/finished/ci/tree
    python benchmarks/pipeline.py            # first runs the CI graph in a temporary copy (~5 min)

Baselines are measured in the same run: each tool's bare start-up (`--version`), and the
retraining that the run-cache restore replaces.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_end_to_end import fresh_copy  # noqa: E402  (the same copy a fresh clone would hold)

BIN = Path(sys.executable).parent
CI = "configs/ci.yaml"


def sh(args: list[str], cwd: Path, timeout: int = 1800) -> tuple[float, str]:
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took, out.stdout


def best_of(args: list[str], cwd: Path, n: int = 3) -> float:
    return min(sh(args, cwd)[0] for _ in range(n))


def finished_tree() -> Path:
    root = fresh_copy(Path(tempfile.mkdtemp(prefix="morph-bench-")))
    took, _ = sh(["snakemake", "-j2", "results/morph1b.json", "--configfile", CI], root)
    print(f"built the finished CI tree in {took:.0f} s at {root}", file=sys.stderr)
    return root


def planned_job_count(tree: Path) -> tuple[int, int]:
    """(jobs planned after moving one shape, jobs in the whole graph)."""
    _, whole = sh(["snakemake", "-n", "--forceall", "results/morph1b.json", "--configfile", CI], tree)
    total = int(re.search(r"^total\s+(\d+)$", whole, re.M).group(1))
    original = (tree / CI).read_text()
    raw = yaml.safe_load(original)
    raw["grid"]["sizes"][-1]["depths"][-1] += 1
    try:
        (tree / CI).write_text(yaml.safe_dump(raw))
        _, plan = sh(["snakemake", "-n", "results/morph1b.json", "--configfile", CI], tree)
    finally:
        (tree / CI).write_text(original)
    return int(re.search(r"^total\s+(\d+)$", plan, re.M).group(1)), total


def revert_and_restore(tree: Path) -> tuple[float, float]:
    """(seconds to retrain one stage after a param change, seconds to restore it after the revert)."""
    sh(["morph", "dvc-yaml", "--params", CI], tree)
    sh(["dvc", "commit", "-f", "-q"], tree)
    stage = "train-d40-l1-t2"
    original = (tree / CI).read_text()
    raw = yaml.safe_load(original)
    raw["train"]["lr"] *= 0.8
    try:
        (tree / CI).write_text(yaml.safe_dump(raw))
        retrain, _ = sh(["dvc", "repro", "-s", stage], tree)
    finally:
        (tree / CI).write_text(original)
    restore, out = sh(["dvc", "repro", "-s", stage], tree)
    if f"Stage '{stage}' is cached" not in out:
        sys.exit(f"expected a run-cache restore, got:\n{out}")
    return retrain, restore


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", type=Path, help="a finished CI tree (default: build one)")
    args = p.parse_args()
    tree = args.tree or finished_tree()
    smk_base = best_of(["snakemake", "--version"], tree)
    smk_noop = best_of(["snakemake", "-n", "results/morph1b.json", "--configfile", CI], tree)
    # The paper's graph (116 nodes before the top-k) is planned from scratch: all of it is new.
    paper_plan = best_of(["snakemake", "-n", "results/morph1b.json", "--configfile", "configs/paper.yaml"], tree)
    planned, total = planned_job_count(tree)
    retrain, restore = revert_and_restore(tree)
    dvc_base = best_of(["dvc", "--version"], tree)
    dvc_noop = best_of(["dvc", "status"], tree)
    rows = [
        ("snakemake -n, finished tree (s)", smk_noop, "snakemake --version", smk_base),
        ("snakemake -n, paper config (s)", paper_plan, "snakemake --version", smk_base),
        ("dvc status, finished tree (s)", dvc_noop, "dvc --version", dvc_base),
        ("run-cache restore after revert (s)", restore, "retraining that stage", retrain),
        ("jobs rerun after one shape changes", planned, "jobs in the graph", total),
    ]
    print(f"{'measure':<38}{'value':>9}  {'baseline':<24}{'value':>9}{'ratio':>8}")
    for name, value, base_name, base in rows:
        print(f"{name:<38}{value:>9.2f}  {base_name:<24}{base:>9.2f}{value / base:>8.2f}")


if __name__ == "__main__":
    main()

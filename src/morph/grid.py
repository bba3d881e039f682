"""Grid expansion: which runs, shapes and target slots exist, with their ids and token budgets.

Written once; the Snakefile, dvc.yaml's generator and every stage call it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import shape_rules
from .shape import Shape, run_id


@dataclass(frozen=True)
class Run:
    run_id: str
    shape: Shape
    tokens: int
    multiplier: float | None  # tokens per parameter; None for a fixed-budget (target) run

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "tokens": self.tokens, "multiplier": self.multiplier, **self.shape.to_dict()}


def _unique(shapes: list[Shape]) -> list[Shape]:
    seen: dict[str, Shape] = {}
    for s in shapes:
        seen.setdefault(s.shape_id, s)
    return list(seen.values())


def _shapes_with_multipliers(cfg: dict) -> list[tuple[Shape, list[float]]]:
    rules, default = shape_rules(cfg), cfg["grid"]["multipliers"]
    pairs = [
        (rules.propose(size["params"], depth), size["multipliers"] or default)
        for size in cfg["grid"]["sizes"]
        for depth in size["depths"]
    ]
    pairs += [(rules.build(s["d_model"], s["n_layers"]), default) for s in cfg["grid"]["shapes"]]
    return pairs


def size_targets(cfg: dict) -> dict[str, int]:
    """shape_id -> the grid.sizes target N it was proposed for (the first size, if several propose it)."""
    rules, targets = shape_rules(cfg), {}
    for size in cfg["grid"]["sizes"]:
        for depth in size["depths"]:
            targets.setdefault(rules.propose(size["params"], depth).shape_id, size["params"])
    return targets


def grid_shapes(cfg: dict) -> list[Shape]:
    """Shapes trained for the law: proposed per size and depth, plus explicit ones, in params order."""
    return _unique([shape for shape, _ in _shapes_with_multipliers(cfg)])


def grid_runs(cfg: dict) -> list[Run]:
    runs: dict[str, Run] = {}
    for shape, multipliers in _shapes_with_multipliers(cfg):
        for m in multipliers:
            rid = run_id(shape, multiplier=m)
            runs.setdefault(rid, Run(rid, shape, round(m * shape.params()), m))
    return list(runs.values())


def baseline_shape(cfg: dict) -> Shape:
    b = cfg["select"]["baseline"]
    return shape_rules(cfg).build(b["d_model"], b["n_layers"])


def candidate_shapes(cfg: dict) -> list[Shape]:
    """Every proposed candidate near N_C, before the tolerance filter (the candidates stage applies it)."""
    rules, sel = shape_rules(cfg), cfg["select"]
    shapes = [rules.propose(sel["params"], depth) for depth in sel["depths"]]
    shapes += [rules.build(s["d_model"], s["n_layers"]) for s in sel["shapes"]]
    return _unique(shapes)


def latency_shapes(cfg: dict) -> list[Shape]:
    """Every shape whose latency the graph measures: the grid, the candidates and the baseline."""
    return _unique(grid_shapes(cfg) + candidate_shapes(cfg) + [baseline_shape(cfg)])


def baseline_run(cfg: dict) -> Run:
    shape = baseline_shape(cfg)
    tokens = cfg["select"]["tokens"]
    return Run(run_id(shape, tokens=tokens), shape, tokens, None)


def target_slots(cfg: dict) -> list[str]:
    """Run directories for the top-k, filled at run time from results/selection.json."""
    return [f"top-{i}" for i in range(1, cfg["select"]["k"] + 1)]


def find_run(cfg: dict, rid: str) -> Run:
    for run in grid_runs(cfg) + [baseline_run(cfg)]:
        if run.run_id == rid:
            return run
    raise KeyError(f"run id {rid!r} is not in the experiment's grid (see `morph grid`)")


def find_shape(cfg: dict, shape_id: str) -> Shape:
    for shape in latency_shapes(cfg):
        if shape.shape_id == shape_id:
            return shape
    raise KeyError(f"shape id {shape_id!r} is not in the experiment (see `morph grid`)")


def sample_token_target(cfg: dict) -> int:
    """Training tokens the sample must hold (config checks it covers the largest run, one epoch)."""
    return cfg["data"]["train_tokens"]

"""Grid expansion: which runs, shapes and candidate shapes an experiment holds, with their ids and
token budgets. `Experiment.expansion` calls `expand` once; everything else reads its result."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from morph.core.shape import Shape, ShapeError, ShapeRules, run_id


@dataclass(frozen=True)
class Run:
    run_id: str
    shape: Shape
    tokens: int
    multiplier: float | None  # tokens per parameter; None for a fixed-budget (target) run
    replicate: int = 0  # seed replicate (grid.replicates); 0 is the run itself, under its plain id
    replicate_of: str = ""  # replicate 0's run id, for r >= 1

    @property
    def original(self) -> str:
        """The run id its replicates share: replicate 0's."""
        return self.replicate_of or self.run_id

    def seed(self, base: int) -> int:
        """The seed of weight init and data order: the experiment's, offset by the replicate index."""
        return base + self.replicate

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "tokens": self.tokens, "multiplier": self.multiplier,
                "replicate": self.replicate, "replicate_of": self.original, **self.shape.to_dict()}


def replicate_id(run_id: str, replicate: int) -> str:
    return f"{run_id}-r{replicate}"


def split_replicate(name: str) -> tuple[str, int]:
    """(the original run id, the replicate index) of a name replicate_id made, or (name, 0)."""
    base, sep, index = name.rpartition("-r")
    return (base, int(index)) if sep and index.isdigit() else (name, 0)


@dataclass(frozen=True)
class Expansion:
    grid_runs: tuple[Run, ...]
    baseline: Run
    baseline_runs: tuple[Run, ...]  # the baseline and its seed replicates at D_C (select.seeds)
    grid_shapes: tuple[Shape, ...]
    candidate_shapes: tuple[Shape, ...]  # every proposed candidate near N_C, before the tolerance filter
    validation_runs: tuple[Run, ...]  # candidates trained at D_C (select.validate), each seed replicate after it
    target_seeds: int  # seeds per shape at D_C: select.seeds when any candidate is validated, else 1
    latency_shapes: tuple[Shape, ...]
    size_targets: dict[str, int]  # shape_id -> the grid.sizes target N it was proposed for (the first)
    runs_by_id: dict[str, Run] = field(repr=False)
    shapes_by_id: dict[str, Shape] = field(repr=False)


def _unique(shapes) -> tuple[Shape, ...]:
    seen: dict[str, Shape] = {}
    for s in shapes:
        seen.setdefault(s.shape_id, s)
    return tuple(seen.values())


def _with_replicates(runs: dict[str, Run], specs) -> dict[str, Run]:
    """The grid runs with each replicated run's seed replicates right after it (same shape and budget).
    A bad entry is a ValueError naming its key, which the experiment loader reports as a config error."""
    counts: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.run not in runs:
            raise ValueError(f"grid.replicates[{i}].run: {spec.run!r} is not a grid run; name one that `morph grid` "
                              f"lists (e.g. {next(iter(runs))})")
        if spec.run in counts:
            raise ValueError(f"grid.replicates[{i}].run: {spec.run!r} is listed twice; give it one entry with the "
                              f"total number of seeds")
        counts[spec.run] = spec.seeds
    out: dict[str, Run] = {}
    for rid, run in runs.items():
        out |= {r.run_id: r for r in seeded(run, counts.get(rid, 1))}
    return out


def seeded(run: Run, seeds: int) -> list[Run]:
    """The run and its seed replicates 1..seeds-1: the same shape and budget, the seed offset by the index, so
    replicate j of every shape shares its seed (init and data order) and shapes compare paired by seed."""
    return [run, *(replace(run, run_id=replicate_id(run.run_id, r), replicate=r, replicate_of=run.run_id)
                   for r in range(1, seeds))]


def variants(rules: ShapeRules, target: int, depth: int, knobs) -> list[Shape]:
    """The default shape of this depth nearest `target` N, then every combination of the knobs (a grid.sizes
    entry's or select's ffn_ratios and n_kv_heads) with the default, each re-proposed to stay near N.
    A ShapeError names the knob whose value builds no new model."""
    shapes = [rules.propose(target, depth, f, kv)
              for f in (None, *knobs.ffn_ratios) for kv in (None, *knobs.n_kv_heads)]
    seen: dict[Shape, Shape] = {}
    for s in shapes:
        twin = seen.setdefault(replace(s, ffn_ratio=None, kv_knob=False), s)
        if twin is s:
            continue
        if s.ffn_ratio != twin.ffn_ratio:
            raise ShapeError(f"ffn_ratios: {s.ffn_ratio:g} builds {s.shape_id} with ffn={s.ffn}, the same model as "
                             f"{twin.shape_id}; space the ratios further apart or lower model.ffn_multiple")
        raise ShapeError(f"n_kv_heads: {s.n_kv_heads} is listed twice or is the model default "
                         f"({twin.n_kv_heads} at {twin.shape_id}); drop it")
    return shapes


def validation_shapes(candidates: tuple[Shape, ...], select) -> list[Shape]:
    """The candidates within the parameter tolerance that select.validate trains at D_C: all, none, or a count
    spread evenly over them in depth order (at one N, decode latency rises with depth)."""
    within = sorted((s for s in candidates if abs(s.params() / select.params - 1) <= select.tolerance),
                    key=lambda s: (s.n_layers, s.d_model, s.shape_id))
    if select.validate == "none":
        return []
    if select.validate == "all" or select.validate >= len(within):
        return within
    m = select.validate
    picks = [round(i * (len(within) - 1) / (m - 1)) for i in range(m)] if m > 1 else [0]
    return [within[i] for i in dict.fromkeys(picks)]


def expand(grid, select, rules: ShapeRules) -> Expansion:
    """One pass over the grid and selection sections (typed sections from the experiment)."""
    proposed = [(size, shape) for size in grid.sizes for depth in size.depths
                for shape in variants(rules, size.params, depth, size)]
    with_multipliers = [(shape, size.multipliers or grid.multipliers) for size, shape in proposed]
    with_multipliers += [(rules.build(s.d_model, s.n_layers), grid.multipliers) for s in grid.shapes]
    size_targets: dict[str, int] = {}
    for size, shape in proposed:
        size_targets.setdefault(shape.shape_id, size.params)

    runs: dict[str, Run] = {}
    for shape, multipliers in with_multipliers:
        for m in multipliers:
            rid = run_id(shape, multiplier=m)
            runs.setdefault(rid, Run(rid, shape, round(m * shape.params()), m))
    runs = _with_replicates(runs, grid.replicates)
    base_shape = rules.build(select.baseline.d_model, select.baseline.n_layers)
    baseline = Run(run_id(base_shape, tokens=select.tokens), base_shape, select.tokens, None)

    grid_shapes = _unique(shape for shape, _ in with_multipliers)
    candidates = _unique([shape for depth in select.depths for shape in variants(rules, select.params, depth, select)]
                         + [rules.build(s.d_model, s.n_layers) for s in select.shapes])
    latency_shapes = _unique((*grid_shapes, *candidates, base_shape))
    # A candidate with the baseline's shape is the baseline run itself.
    validated = [Run(run_id(s, tokens=select.tokens), s, select.tokens, None)
                 for s in validation_shapes(candidates, select) if s.shape_id != base_shape.shape_id]
    seeds = select.seeds if select.validate != "none" else 1
    validation = tuple(r for run in validated for r in seeded(run, seeds))
    baseline_runs = tuple(seeded(baseline, seeds))
    return Expansion(
        grid_runs=tuple(runs.values()), baseline=baseline, baseline_runs=baseline_runs, grid_shapes=grid_shapes,
        candidate_shapes=candidates, validation_runs=validation, target_seeds=seeds, latency_shapes=latency_shapes,
        size_targets=size_targets,
        runs_by_id={**runs, **{r.run_id: r for r in (*baseline_runs, *validation)}},
        shapes_by_id={s.shape_id: s for s in latency_shapes},
    )

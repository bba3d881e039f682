"""Run or queue DVC experiments whose params change the graph: `dvc exp run -S`, with dvc.yaml written for each.

DVC's templating substitutes params but computes nothing, and a run's stages hold what only the experiment's code
derives (each shape's width from its size and depth, the replicates, the validation runs), so `dvc exp run -S
grid.…` alone meets stages written for the old grid, and each one refuses it. This applies the overrides to a copy
of the experiment file with DVC's own override grammar, checks the result, writes dvc.yaml for it, and hands the
same overrides to `dvc exp run`: a queued experiment's snapshot holds both files. A sweep
(`-S 'grid.multipliers=[1,2],[1,2,4]'`) queues one experiment per point. After queueing, the workspace's dvc.yaml
is put back; after a run in the workspace, it is the graph of the params DVC left there."""
from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.errors import MorphError
from morph.core.io import atomic_path
from morph.workflow import dvc_sync, dvc_yaml

DVC_YAML = Path("dvc.yaml")


def add_arguments(p):
    p.add_argument("-S", "--set-param", action="append", required=True, metavar="KEY=VALUE",
                   help="a params override in `dvc exp run -S`'s grammar (key=value, +key=value, ~key; "
                        "a=1,2 sweeps); repeat for several")
    p.add_argument("--queue", action="store_true",
                   help="queue the experiments (`dvc queue start` runs them) instead of running one in the workspace")
    p.add_argument("-n", "--name", help="the experiment's name (one experiment only)")
    p.add_argument("targets", nargs="*", help="stages or outputs to reproduce, as `dvc exp run` takes them "
                                              "(default: the whole graph)")


def shown(overrides: list[str]) -> str:
    """The overrides as they would be typed after -S."""
    return " ".join(map(shlex.quote, overrides))


def sweep(overrides: list[str]) -> list[list[str]]:
    """Each experiment's overrides: one list without a sweep, one per point of the sweep's product."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import get_hydra_sweeps

    try:
        return [point["params"] for point in get_hydra_sweeps({"params": overrides})]
    except (InvalidArgumentError, ValueError) as err:
        raise MorphError(f"-S {shown(overrides)}: {err}; write key=value as "
                         "`dvc exp run -S` takes it") from None


def varied_graph(params: str, overrides: list[str]) -> str:
    """dvc.yaml's text for the experiment file with the overrides applied; a bad key or value is refused by the
    experiment's own checks, naming it, before anything runs."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    source = Path(params)
    with tempfile.TemporaryDirectory(prefix="morph-dvc-exp-") as folder:
        copy = Path(folder) / source.name
        copy.write_bytes(source.read_bytes())
        try:
            apply_overrides(copy, overrides)
        except InvalidArgumentError as err:
            raise MorphError(f"-S {shown(overrides)}: {err.__cause__ or err}") from None
        try:
            exp = experiment.load(copy)
        except MorphError as err:
            raise MorphError(f"with -S {shown(overrides)}: {err}".replace(str(copy), params)) from None
        return dvc_yaml.render(exp, params)[0]


def write_graph(text: str) -> None:
    lock = dvc_sync.hold()  # refused while Snakemake or a dvc command runs in this tree
    try:
        with atomic_path(DVC_YAML) as tmp:
            tmp.write_text(text, encoding="utf-8")
    finally:
        if lock is not None:
            lock.close()  # dvc exp run takes it itself


def dvc_command(args, overrides: list[str]) -> list[str]:
    # DVC reads params.yaml by default; another experiment file is named before each key.
    prefix = "" if args.params == PARAMS else f"{args.params}:"
    return [sys.executable, "-m", "dvc", "exp", "run", *(a for o in overrides for a in ("-S", prefix + o)),
            *(["--queue"] if args.queue else []), *(["--name", args.name] if args.name else []), *args.targets]


def run(args):
    points = sweep(args.set_param)
    if len(points) > 1 and not args.queue:
        raise MorphError(f"-S sweeps {len(points)} experiments; add --queue, then `dvc queue start` runs them")
    if len(points) > 1 and args.name:
        raise MorphError(f"--name names one experiment and -S sweeps {len(points)}; drop --name")
    graphs = [varied_graph(args.params, point) for point in points]  # every point checked before any is queued
    if not DVC_YAML.is_file():
        raise MorphError(f"{DVC_YAML}: not found here; run from the checkout's root, after `morph dvc-yaml`")
    original = DVC_YAML.read_text(encoding="utf-8")
    for done_before, (point, graph) in enumerate(zip(points, graphs)):
        write_graph(graph)
        try:
            done = subprocess.run(dvc_command(args, point))
        finally:
            # DVC left the workspace as it was after queueing; after a run there, holding the experiment's params
            # (or, had it failed before applying them, the old ones).
            write_graph(original if args.queue else dvc_yaml.render(experiment.load(args.params), args.params)[0])
        if done.returncode != 0:
            queued = f"; the {done_before} before it are queued" if args.queue else ""
            raise MorphError(f"`dvc exp run` failed for -S {shown(point)} (exit "
                             f"{done.returncode}, its message above){queued}")
    return 0

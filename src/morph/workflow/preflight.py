"""What can be known before any job starts, checked when the Snakefile loads and when a command DVC runs starts.

Snakemake deletes a job's outputs as the job starts, so a fault that a stage would refuse only once running
would cost its previous result. Checked here, cheaply (no file is hashed unless it changed after its record, and
the sources are read only before a sample that runs): the sources data.paths names, training's launch settings
against this machine and the extras a planned stage needs, the sample's shards against its manifest, the
tokenizer directory's files, and every JSON and CSV output the graph already holds.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import shlex
import sys
from pathlib import Path

from morph.core.artifacts.data import SAMPLE, SAMPLE_MANIFEST, TOKENIZER, TOKENIZER_FILES, TOKENS_META
from morph.core.data import source_files
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import sha256_file
from morph.workflow import pipeline


def check(exp: Experiment, params: str, rebuilt: frozenset[str] = frozenset(),
          planned: frozenset[str] = frozenset(), local: bool = False) -> None:
    """Refuse, naming the file and the fix, anything that would fail a job after Snakemake deleted its outputs.
    Outputs in `rebuilt` (what the planned jobs write) are skipped: a forced rebuild is the fix named here.
    `planned` names the stages about to run and `local` says whether they run on this machine."""
    sources(exp, read="sample" in planned)
    if warning := cost_warning(exp, params, rebuilt, local):
        print(f"morph: warning: {warning}", file=sys.stderr)
    runnable(exp, planned, local)
    if exp.at(SAMPLE_MANIFEST) not in rebuilt:
        _sample_shards(exp, params)
    if exp.at(TOKENIZER) not in rebuilt:
        missing_tokenizer_file(exp, params, refuse=True)
    _outputs(exp, params, rebuilt)


def runnable(exp: Experiment, planned: frozenset[str], local: bool) -> None:
    """What a planned job would refuse once started, refused now: training's strategy, precision, devices and
    memory against this machine (jobs sent to a cluster are judged there), and the extras a stage imports."""
    if planned & {"evaluate"} and importlib.util.find_spec("lm_eval") is None:
        raise MorphError("evaluate: lm-eval is not installed in this environment; pip install -e '.[eval]' (or run "
                         "scripts/bootstrap.sh), then rerun")
    if local and planned & pipeline.TRAINING:
        import torch

        from morph.train.launch import check as check_launch
        from morph.train.launch import resolve, this_machine

        launch = resolve(exp.train, torch.cuda.is_available())
        largest = max((*exp.grid_runs, *exp.target_runs), key=lambda r: r.shape.params()).shape
        check_launch(exp.train, launch, this_machine(launch.accelerator), largest, exp.model.seq_len)


# Above this much training on this machine's CPUs (at best) a run is worth a second thought before it starts.
COSTLY_CPU_S = 24 * 3600
REFERENCE_GPU = "H100"  # the datasheet peak (train/flops.py) the GPU-hours are counted at
FASTEST_CPU_FLOPS = 1e13  # no CPU reaches this in fp32: below it times COSTLY_CPU_S, nothing is measured


def cost_warning(exp: Experiment, params: str, rebuilt: frozenset[str], local: bool) -> str | None:
    """The planned jobs and their training FLOPs as hours, when they would train on this machine's CPUs for more than
    COSTLY_CPU_S even at its measured matmul peak, counted as `morph grid --cost` counts them (workflow/cost.py)."""
    jobs = [n for n in pipeline.all_nodes(exp, params) if set(n.outs) & rebuilt]
    trainings = [n for n in jobs if n.stage in pipeline.TRAINING]
    if not local or not trainings:
        return None
    import torch

    from morph.train.flops import DATASHEET_PEAKS, matmul_peak_flops
    from morph.workflow.cost import costs

    if torch.cuda.is_available():
        return None
    flops = sum(c.flops for c in costs(exp, trainings))
    if flops <= FASTEST_CPU_FLOPS * COSTLY_CPU_S or flops <= (cpu := matmul_peak_flops("cpu")) * COSTLY_CPU_S:
        return None
    gpu = dict(DATASHEET_PEAKS)[REFERENCE_GPU]["bfloat16"]
    return (f"{params}: {len(jobs)} jobs planned, {len(trainings)} of them training ({flops:.3g} FLOPs), on a machine "
            f"with no GPU: at least {flops / cpu / 3600:,.0f} hours here at this machine's measured matmul peak "
            f"({cpu / 1e9:.0f} GFLOP/s, {torch.get_num_threads()} threads), or {flops / gpu / 3600:,.0f} "
            f"{REFERENCE_GPU}-hours at its bf16 dense peak. It is meant for GPUs or a cluster (--profile "
            "profiles/slurm); a small experiment (params.yaml, configs/ci.yaml) runs here")


def sources(exp: Experiment, read: bool = False) -> None:
    """Each data.paths glob matches files: checked as the Snakefile loads, even for a dry run. With `read` (the
    sample is planned, so its folder is about to go), the sample's own index pass and draw run here, making every
    refusal it makes about its sources (a truncated shard, a line that is not JSON, a held-out document also drawn
    for training, a corpus too small) while the old sample stands. It costs one of the two reads the sample
    itself makes, and only before a sample that runs."""
    if exp.data.source == "hub":
        return
    if read:
        from morph.data.sample import draw, targets

        draw(exp, targets(exp))
    else:
        source_files(exp.data.paths)


def _sample_shards(exp: Experiment, params: str) -> None:
    """Each shard the manifest lists still holds the bytes it recorded (only shards written after it are hashed)."""
    manifest = Path(exp.at(SAMPLE_MANIFEST))
    if not manifest.is_file():
        return
    try:
        recorded = [s for split in json.loads(manifest.read_text(encoding="utf-8"))["splits"].values()
                    for s in split["shards"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # a damaged manifest is the JSON check's to name
    written = manifest.stat().st_mtime
    fix = f"rebuild the sample: {rebuild_data(exp, SAMPLE_MANIFEST, 'sample', params)}"
    for shard in recorded:
        path = Path(exp.at(SAMPLE)) / shard["file"]
        if not path.is_file():
            continue  # the graph rebuilds a missing output
        if path.stat().st_mtime > written and sha256_file(path) != shard["sha256"]:
            raise MorphError(f"{path}: changed since {manifest} recorded its sha256 (damaged?); {fix}")


def rebuild_data(exp: Experiment, output: str, stage: str, params: str) -> str:
    """The commands that rebuild a data output and the tokens after it in one go. Snakemake then finds meta.json
    byte-identical by its checksum, so nothing trained on it reruns; within the run that rebuilt the data it would
    still rerun what follows, hence meta.json as the second target."""
    return (f"snakemake -j1 --force {exp.at(output)} {exp.at(TOKENS_META)} --configfile {shlex.quote(params)} "
            f"(or dvc repro -f -s {stage}, then dvc repro)")


def missing_tokenizer_file(exp: Experiment, params: str, refuse: bool = False) -> str | None:
    """The first file the experiment's saved tokenizer lacks, as a message with the fix (raised when `refuse`), or
    None."""
    directory = Path(exp.at(TOKENIZER))
    if not directory.is_dir():
        return None
    for name in TOKENIZER_FILES:
        if not (directory / name).is_file():
            problem = (f"{directory / name}: missing, so {directory} is incomplete; rebuild it: "
                       f"{rebuild_data(exp, TOKENIZER, 'tokenizer', params)}")
            if refuse:
                raise MorphError(problem)
            return problem
    return None


def _readable(path: Path) -> None:
    """A JSON output parses; a CSV output's rows each have its header's fields. Raises what reading raises."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        json.loads(text)
        return
    rows = csv.reader(io.StringIO(text))
    width = len(next(rows, []))
    for line, row in enumerate(rows, 2):
        if len(row) != width:
            raise ValueError(f"line {line} has {len(row)} fields where the header has {width}")


def _outputs(exp: Experiment, params: str, rebuilt: frozenset[str]) -> None:
    """Every JSON and CSV output present reads: a damaged one would fail the job reading it after its outputs
    went."""
    for node in pipeline.all_nodes(exp, params):
        for out in node.outs:
            path = Path(out)
            if path.suffix not in (".json", ".csv") or out in rebuilt or not path.is_file():
                continue
            try:
                _readable(path)
            except (ValueError, RecursionError, csv.Error) as err:
                raise MorphError(f"{path}: damaged ({type(err).__name__}: {str(err)[:80]}); restore it, or rebuild "
                                 f"it: snakemake -j1 --force {shlex.quote(out)} --configfile {shlex.quote(params)} "
                                 f"(or dvc repro -f -s {node.name})") from None

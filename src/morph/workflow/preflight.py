"""What can be known before any job starts, checked when the Snakefile loads and when a command DVC runs starts.

Snakemake deletes a job's outputs as the job starts, so a fault that a stage would refuse only once running
would cost its previous result. Checked here, cheaply (no file is hashed unless it changed after its record):
the sources data.paths names, training's launch settings against this machine and the extras a planned stage
needs, the sample's shards against its manifest, the tokenizer directory's files, and every JSON and CSV
output the graph already holds.
"""
from __future__ import annotations

import csv
import glob
import importlib.util
import io
import json
import os
import shlex
from pathlib import Path

from morph.errors import MorphError
from morph.io import sha256_file
from morph.spec.artifacts.data import SAMPLE, SAMPLE_MANIFEST, TOKENIZER, TOKENIZER_FILES, TOKENS_META
from morph.spec.experiment import Experiment
from morph.workflow import pipeline


def check(exp: Experiment, params: str, rebuilt: frozenset[str] = frozenset(),
          planned: frozenset[str] = frozenset(), local: bool = False) -> None:
    """Refuse, naming the file and the fix, anything that would fail a job after Snakemake deleted its outputs.
    Outputs in `rebuilt` (what the planned jobs write) are skipped: a forced rebuild is the fix named here.
    `planned` names the stages about to run and `local` says whether they run on this machine."""
    sources(exp)
    runnable(exp, planned, local)
    if SAMPLE_MANIFEST not in rebuilt:
        _sample_shards(params)
    if TOKENIZER not in rebuilt:
        missing_tokenizer_file(Path(TOKENIZER), params, refuse=True)
    _outputs(exp, params, rebuilt)


TRAINING = frozenset({"train", "train_target"})


def runnable(exp: Experiment, planned: frozenset[str], local: bool) -> None:
    """What a planned job would refuse once started, refused now: training's strategy, precision, devices and
    memory against this machine (jobs sent to a cluster are judged there), and the extras a stage imports."""
    if planned & {"evaluate"} and importlib.util.find_spec("lm_eval") is None:
        raise MorphError("evaluate: lm-eval is not installed in this environment; pip install -e '.[eval]' (or run "
                         "scripts/bootstrap.sh), then rerun")
    if local and planned & TRAINING:
        import torch

        from morph.train.launch import check as check_launch
        from morph.train.launch import resolve, this_machine

        launch = resolve(exp.train, torch.cuda.is_available())
        largest = max((*exp.grid_runs, *exp.target_runs), key=lambda r: r.shape.params()).shape
        check_launch(exp.train, launch, this_machine(launch.accelerator), largest, exp.model.seq_len)


def sources(exp: Experiment) -> None:
    """Each data.paths glob matches files: checked as the Snakefile loads, even for a dry run."""
    if exp.data.source == "hub":
        return
    for pattern in exp.data.paths:
        matches = glob.glob(pattern, recursive=True)
        if not matches:
            raise MorphError(f"data.paths: {pattern!r} matches no file (relative to {os.getcwd()}); fix the "
                             "pattern in the experiment file")
        if folders := [m for m in matches if not os.path.isfile(m)]:
            raise MorphError(f"data.paths: {pattern!r} matches {folders[0]}, which is not a file; make the pattern "
                             "match DCLM shards (*.jsonl.zst) only")


def _sample_shards(params: str) -> None:
    """Each shard the manifest lists still holds the bytes it recorded (only shards written after it are hashed)."""
    manifest = Path(SAMPLE_MANIFEST)
    if not manifest.is_file():
        return
    try:
        recorded = [s for split in json.loads(manifest.read_text(encoding="utf-8"))["splits"].values()
                    for s in split["shards"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # a damaged manifest is the JSON check's to name
    written = manifest.stat().st_mtime
    fix = f"rebuild the sample: {rebuild_data(SAMPLE_MANIFEST, 'sample', params)}"
    for shard in recorded:
        path = Path(SAMPLE) / shard["file"]
        if not path.is_file():
            continue  # the graph rebuilds a missing output
        if path.stat().st_mtime > written and sha256_file(path) != shard["sha256"]:
            raise MorphError(f"{path}: changed since {manifest} recorded its sha256 (damaged?); {fix}")


def rebuild_data(output: str, stage: str, params: str) -> str:
    """The commands that rebuild a data output and the tokens after it in one go. Snakemake then finds meta.json
    byte-identical by its checksum, so nothing trained on it reruns; within the run that rebuilt the data it would
    still rerun what follows, hence meta.json as the second target."""
    return (f"snakemake -j1 --force {output} {TOKENS_META} --configfile {shlex.quote(params)} "
            f"(or dvc repro -f -s {stage}, then dvc repro)")


def missing_tokenizer_file(directory: Path, params: str, refuse: bool = False) -> str | None:
    """The first file a saved tokenizer lacks, as a message with the fix (raised when `refuse`), or None."""
    if not directory.is_dir():
        return None
    for name in TOKENIZER_FILES:
        if not (directory / name).is_file():
            problem = (f"{directory / name}: missing, so {directory} is incomplete; rebuild it: "
                       f"{rebuild_data(TOKENIZER, 'tokenizer', params)}")
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

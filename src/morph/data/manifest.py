"""The sample's manifest, as the tokenize stages read it: refused when drawn for another experiment,
and each shard checked against its recorded sha256 before it is read."""
from __future__ import annotations

from pathlib import Path

from morph.core.artifacts.data import MANIFEST
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import read_json, sha256_file

SPLITS = ("train", "val")


def read_manifest(cfg: Experiment, sample: Path) -> dict:
    """The manifest of a sample drawn for this experiment; another seed or size would silently be wrong."""
    manifest = read_json(sample / MANIFEST)
    wanted = {"seed": cfg.seed, **{k: getattr(cfg.data, k) for k in ("train_tokens", "val_tokens", "shard_mb")}}
    found = {"seed": manifest["seed"], **{k: manifest["targets"].get(k) for k in ("train_tokens", "val_tokens",
                                                                                 "shard_mb")}}
    if wanted != found:
        raise MorphError(f"{sample}: drawn for {found}, but the experiment asks for {wanted}; rerun `morph sample`")
    return manifest


def checked_shard(sample: Path, entry: dict) -> Path:
    """A sample shard's path once its bytes match the manifest."""
    path = sample / entry["file"]
    if not path.exists():
        raise MorphError(f"{path}: missing (has `morph sample` run?)")
    if sha256_file(path) != entry["sha256"]:
        raise MorphError(f"{path}: does not match the sha256 in {sample / MANIFEST}; rerun `morph sample`")
    return path

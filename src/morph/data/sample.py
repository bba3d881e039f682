"""Sample documents uniformly (seeded) from DCLM shards into train and validation splits.

Sources (data.source): `fixture` and `local` read the globs in data.paths (DCLM *.jsonl.zst files,
relative to the working directory); `hub` streams data.hub_id with `datasets` (needs the network).
The character targets are (data.train_tokens or data.val_tokens) x data.chars_per_token x data.margin.
Validation documents are drawn first, then training documents; no document is in both.
Writes into --out: train.jsonl.zst and val.jsonl.zst (DCLM format, documents in sampled order, each
with its `origin`) and manifest.json (seed, source files and their sha256, counts, output sha256).
A source too small for the targets is an error unless data.allow_repeat is true, and then the
repetition is recorded in the manifest.
"""
from __future__ import annotations

import glob
import math
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from tqdm import tqdm

from morph.data.shards import read_docs, write_docs
from morph.errors import MorphError
from morph.io import atomic_dir, library_versions, provenance, sha256_file, write_json
from morph.workflow import experiment, paths
from morph.workflow.experiment import Experiment

# Streaming shuffle buffer for the hub: documents are drawn uniformly from a window this large.
HUB_SHUFFLE_BUFFER = 10_000


def add_arguments(p):
    p.add_argument("--params", default=paths.PARAMS, help="experiment file (default: %(default)s)")
    p.add_argument("--out", default=paths.SAMPLE, help="output directory (default: %(default)s)")


@dataclass(frozen=True)
class Targets:
    train_chars: int
    val_chars: int
    explain: str  # how the targets follow from the experiment, for error messages


def targets(cfg: Experiment) -> Targets:
    d = cfg.data
    per_token = d.chars_per_token * d.margin
    train, val = math.ceil(d.train_tokens * per_token), math.ceil(d.val_tokens * per_token)
    explain = (
        f"train {train:,} + val {val:,} characters = (data.train_tokens {d.train_tokens:,} / "
        f"data.val_tokens {d.val_tokens:,}) x data.chars_per_token {d.chars_per_token} x data.margin {d.margin}"
    )
    return Targets(train, val, explain)


@dataclass
class Plan:
    val: np.ndarray  # document indices, in sampled order
    train: np.ndarray  # may hold an index more than once when repeated
    passes: int  # passes over the training pool; > 1 only with data.allow_repeat


def plan(lengths: np.ndarray, seed: int, tg: Targets, allow_repeat: bool) -> Plan:
    """Choose documents by a seeded permutation: validation first, then training, by characters."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    total = int(lengths.sum())
    too_small = (
        f"the source holds {total:,} characters in {len(lengths):,} documents, but the sample needs {tg.explain}; "
        "add shards to data.paths, lower data.train_tokens"
    )
    cum = np.cumsum(lengths[order])
    n_val = int(np.searchsorted(cum, tg.val_chars)) + 1
    if n_val > len(order):
        raise MorphError(f"data: {too_small} (validation documents are never repeated)")
    val, pool = order[:n_val], order[n_val:]
    pool_chars = int(lengths[pool].sum())
    if pool_chars < tg.train_chars and not allow_repeat:
        raise MorphError(f"data: {too_small}, or set data.allow_repeat: true to repeat training documents")
    if pool_chars == 0:
        raise MorphError(f"data: {too_small}; no training documents are left after validation")
    chunks, chars, passes = [], 0, 0
    while chars < tg.train_chars:
        take = pool if passes == 0 else rng.permutation(pool)  # a fresh order for every repeat
        cum = np.cumsum(lengths[take])
        k = min(int(np.searchsorted(cum, tg.train_chars - chars)) + 1, len(take))
        chunks.append(take[:k])
        chars += int(cum[k - 1])
        passes += 1
    return Plan(val, np.concatenate(chunks), passes)


def _resolve(patterns: list[str]) -> list[str]:
    files: dict[str, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise MorphError(f"data.paths: {pattern!r} matches no file (relative to {os.getcwd()})")
        files.update(dict.fromkeys(matches))
    return list(files)


def _from_shards(cfg: Experiment, tg: Targets) -> tuple[list[dict], list[dict], dict, int]:
    files = _resolve(cfg.data.paths)
    where, lengths = [], []  # (file index, line number) and characters of every document
    with tqdm(desc="index documents", unit="doc") as bar:
        for f_idx, path in enumerate(files):
            for line_no, record in read_docs(path):
                where.append((f_idx, line_no))
                lengths.append(len(record["text"]))
                bar.update()
    chosen = plan(np.asarray(lengths, dtype=np.int64), cfg.seed, tg, cfg.data.allow_repeat)

    wanted: dict[tuple[int, int], dict | None] = {where[i]: None for i in np.concatenate([chosen.val, chosen.train])}
    with tqdm(total=len(wanted), desc="read sample", unit="doc") as bar:
        for f_idx in sorted({f for f, _ in wanted}):
            for line_no, record in read_docs(files[f_idx]):
                if (f_idx, line_no) in wanted:
                    wanted[(f_idx, line_no)] = {
                        "text": record["text"],
                        "id": record.get("id", record.get("url")),
                        "origin": f"{files[f_idx]}:{line_no}",
                    }
                    bar.update()

    def records(indices):
        return [wanted[where[i]] for i in indices]

    source = {
        "kind": cfg.data.source,
        "paths": cfg.data.paths,
        "docs": len(lengths),
        "chars": int(sum(lengths)),
        **provenance(files),
    }
    return records(chosen.train), records(chosen.val), source, chosen.passes


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def check_hub_reachable(cfg: Experiment) -> None:
    """Fail within data.hub_timeout_s when the hub cannot be reached, instead of hanging in a download."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            raise MorphError(
                f"data.source: 'hub' needs the network but {var} is set; use data.source: fixture, "
                "or local shards with data.source: local and data.paths"
            )
    timeout = cfg.data.hub_timeout_s
    url = urlparse(hub_endpoint())
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    outcome: dict = {}

    def probe():  # in a thread, because name resolution ignores socket timeouts
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = True
        except OSError as err:
            outcome["error"] = err

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome.get("ok"):
        reason = outcome.get("error") or "no answer"
        raise MorphError(
            f"data.source: 'hub' cannot reach {host}:{port} within data.hub_timeout_s={timeout}s ({reason}); "
            "work offline with data.source: fixture, or download shards and use data.source: local"
        )


def _from_hub(cfg: Experiment, tg: Targets) -> tuple[list[dict], list[dict], dict, int]:
    check_hub_reachable(cfg)
    timeout = cfg.data.hub_timeout_s
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(math.ceil(timeout)))  # for datasets' own requests
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(math.ceil(timeout)))
    import datasets
    from huggingface_hub import HfApi

    hub_id = cfg.data.hub_id
    try:
        # Pin the revision first: it versions the sample, and a silent network fails here within the timeout.
        revision = HfApi(endpoint=hub_endpoint()).dataset_info(hub_id, timeout=timeout).sha
        stream = datasets.load_dataset(hub_id, split="train", streaming=True, revision=revision)
    except Exception as err:  # network and hub errors come in many types; all mean the same to the user
        raise MorphError(f"data.hub_id: cannot open {hub_id!r} on the hub ({type(err).__name__}: {err})") from None
    stream = stream.shuffle(seed=cfg.seed, buffer_size=HUB_SHUFFLE_BUFFER)
    train, val, chars = [], [], {"train": 0, "val": 0}
    with tqdm(total=tg.train_chars + tg.val_chars, desc="stream hub", unit="char", unit_scale=True) as bar:
        for i, record in enumerate(stream):
            text = record.get("text")
            if not isinstance(text, str):
                raise MorphError(f"{hub_id}: streamed document {i} has no string `text` field")
            split = "val" if chars["val"] < tg.val_chars else "train"
            (val if split == "val" else train).append(
                {"text": text, "id": record.get("id", record.get("url")), "origin": f"hub:{hub_id}@{revision}#{i}"}
            )
            chars[split] += len(text)
            bar.update(len(text))
            if chars["train"] >= tg.train_chars:
                break
        else:
            raise MorphError(f"data.hub_id: the stream of {hub_id!r} ended before the sample was full ({tg.explain})")
    source = {"kind": "hub", "hub_id": hub_id, "revision": revision, "shuffle_buffer": HUB_SHUFFLE_BUFFER}
    return train, val, source, 1


def _split_summary(records: list[dict], path: Path) -> dict:
    return {
        "file": path.name,
        "docs": len(records),
        "unique_docs": len({r["origin"] for r in records}),
        "chars": sum(len(r["text"]) for r in records),
        "sha256": sha256_file(path),
    }


def run(args):
    cfg = experiment.load(args.params)
    tg = targets(cfg)
    source_fn = _from_hub if cfg.data.source == "hub" else _from_shards
    train, val, source, passes = source_fn(cfg, tg)
    with atomic_dir(args.out) as tmp:
        splits = {}
        for name, records in (("train", train), ("val", val)):
            path = tmp / f"{name}.jsonl.zst"
            write_docs(path, tqdm(records, desc=f"write {name}", unit="doc"))
            splits[name] = _split_summary(records, path)
        write_json(
            tmp / "manifest.json",
            {
                "seed": cfg.seed,
                "source": source,
                "targets": {"train_chars": tg.train_chars, "val_chars": tg.val_chars,
                            **{k: getattr(cfg.data, k) for k in ("train_tokens", "val_tokens", "chars_per_token", "margin")}},
                "splits": splits,
                "repeated": passes > 1,
                "train_passes": passes,
                "library_versions": library_versions("numpy", "zstandard", "datasets"),
            },
        )
    print(f"sampled {splits['train']['docs']:,} train docs ({splits['train']['chars']:,} chars) and "
          f"{splits['val']['docs']:,} val docs ({splits['val']['chars']:,} chars) into {args.out}"
          + (f"; training documents repeated over {passes} passes" if passes > 1 else ""))
    return 0

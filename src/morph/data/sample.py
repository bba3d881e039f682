"""Sample documents uniformly (seeded) from DCLM shards into train and validation shards, streaming.

Sources (data.source): `fixture` and `local` read the globs in data.paths (DCLM *.jsonl.zst files,
relative to the working directory, expanded by `core.data.source_files`, the rule the graph tracks them by);
`hub` streams data.hub_id with `datasets` (needs the network).
The character targets are (data.train_tokens or data.val_tokens) x data.chars_per_token x data.margin.
Validation documents are drawn first, then training documents; no document is in both, and from local shards
a held-out text that is also drawn for training (the same document in two files) is refused.

Local shards are read twice and never held: an index pass records each document's length, a seeded
permutation of those lengths chooses the documents, and a second pass writes each chosen document
as it is read. Each split goes to ceil(its characters / data.shard_mb) shards, a count fixed by the
params so both graphs know every shard before sampling; a document goes to the shard its position
in the split's characters falls in. Writes into --out: <split>-NNNNN.jsonl.zst (DCLM format, each
document with its `origin`) and manifest.json (seed, source files and their sha256, and every shard
with its documents, characters and sha256). A source too small for the targets is an error unless
data.allow_repeat is true, and then the repetition is recorded in the manifest.
"""
from __future__ import annotations

import hashlib
import math
import os
import socket
import sys
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from tqdm import tqdm

from morph.core import experiment
from morph.core.artifacts.data import MANIFEST, sample_shard
from morph.core.data import source_files
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import atomic_dir, library_versions, provenance, sha256_file, write_json
from morph.data.shards import DocWriter, read_docs

# Streaming shuffle buffer for the hub: documents are drawn uniformly from a window this large.
HUB_SHUFFLE_BUFFER = 10_000


@dataclass(frozen=True)
class Targets:
    train_chars: int
    val_chars: int
    explain: str  # how the targets follow from the experiment, for error messages


def targets(cfg: Experiment) -> Targets:
    d = cfg.data
    train, val = cfg.sample_chars["train"], cfg.sample_chars["val"]
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


class SplitShards:
    """One split's shards, filled as documents arrive: a document goes to the shard its first character's
    position in the split falls in, so shards hold about equal text and their count never changes."""

    def __init__(self, directory: Path, names: list[str], target_chars: int):
        self.directory, self.names, self.target = directory, names, target_chars
        self.chars = 0  # characters written to the split so far
        self.shards: list[dict] = []  # one summary per shard opened so far
        self._writer: DocWriter | None = None

    def _open_through(self, index: int) -> None:
        while len(self.shards) <= index:  # shards skipped by a very long document stay empty
            if self._writer:
                self._writer.close()
            name = Path(sample_shard(self.names[len(self.shards)])).name
            self._writer = DocWriter(self.directory / name)
            self.shards.append({"file": name, "docs": 0, "chars": 0})

    def add(self, record: dict) -> None:
        self._open_through(min(len(self.names) - 1, self.chars * len(self.names) // self.target))
        self._writer.write(record)
        self.shards[-1]["docs"] += 1
        self.shards[-1]["chars"] += len(record["text"])
        self.chars += len(record["text"])

    def close(self) -> list[dict]:
        self._open_through(len(self.names) - 1)
        self._writer.close()
        return [{**s, "sha256": sha256_file(self.directory / s["file"])} for s in self.shards]


@dataclass
class Index:
    lengths: np.ndarray  # every document's characters
    per_file: np.ndarray  # the number of documents in each file
    keys: np.ndarray  # every document's text, as the first 8 bytes of its sha256 (uint64)


def _index(files: list[str]) -> Index:
    """The characters and a content key of every document, and the number of documents in each file; no text is
    kept. 8 bytes of key per document: a chance collision between 10^4 held-out and 10^8 training documents has
    odds of about 1 in 10^7, and hashing costs a few percent of parsing."""
    lengths, keys, per_file = array("q"), bytearray(), []
    with tqdm(desc="index documents", unit="doc") as bar:
        for path in files:
            before = len(lengths)
            for _, record in read_docs(path):
                lengths.append(len(record["text"]))
                keys += hashlib.sha256(record["text"].encode("utf-8")).digest()[:8]
                bar.update()
            per_file.append(len(lengths) - before)
            if per_file[-1] == 0:  # a readable file with no lines: most likely a failed download or export
                tqdm.write(f"morph sample: warning: {path} holds no documents; it adds nothing to the sample "
                           "(check the file, or drop it from data.paths)", file=sys.stderr)
    return Index(np.frombuffer(lengths, dtype=np.int64), np.asarray(per_file, dtype=np.int64),
                 np.frombuffer(keys, dtype=np.uint64))


def _refuse_held_out_in_training(files: list[str], index: Index, chosen: Plan) -> None:
    """A held-out document whose text is also drawn for training (one shard under two names, a document in two
    shards) would score the model on text it trained on; refused by content, wherever the copies sit."""
    train = np.unique(chosen.train)
    shared = np.intersect1d(index.keys[chosen.val], index.keys[train])
    if not len(shared):
        return
    ends = np.cumsum(index.per_file)

    def where(doc: int) -> str:
        f = int(np.searchsorted(ends, doc, side="right"))
        return f"{files[f]}:{doc - (ends[f] - index.per_file[f]) + 1}"

    held_out = chosen.val[np.isin(index.keys[chosen.val], shared)][0]
    trained = train[index.keys[train] == index.keys[held_out]][0]
    raise MorphError(
        f"data.paths: {len(shared)} held-out document(s) also drawn for training, e.g. the text at {where(held_out)} "
        f"is also at {where(trained)}; the sources hold one document twice (a shard under two names?): remove the "
        "duplicate file or documents from the sources, then rerun")


def draw(cfg: Experiment, tg: Targets) -> tuple[list[str], Index, Plan]:
    """The source files, their index and the documents drawn from them: every refusal about the sources, made
    before anything is written (the preflight runs it before Snakemake deletes the old sample)."""
    files = source_files(cfg.data.paths)
    index = _index(files)
    chosen = plan(index.lengths, cfg.seed, tg, cfg.data.allow_repeat)
    _refuse_held_out_in_training(files, index, chosen)
    return files, index, chosen


def _from_shards(cfg: Experiment, tg: Targets, sinks: dict[str, SplitShards]) -> tuple[dict, int, dict]:
    files, index, chosen = draw(cfg, tg)
    lengths, per_file = index.lengths, index.per_file
    in_val = np.zeros(len(lengths), dtype=bool)
    in_val[chosen.val] = True
    train_times = np.bincount(chosen.train, minlength=len(lengths))  # > 1 only when repeated
    first = np.cumsum(per_file) - per_file  # each file's first document, in the index
    with tqdm(total=len(chosen.val) + len(chosen.train), desc="write sample", unit="doc") as bar:
        for f_idx, path in enumerate(files):
            mine = slice(first[f_idx], first[f_idx] + per_file[f_idx])
            if not (in_val[mine].any() or train_times[mine].any()):
                continue
            for line_no, record in read_docs(path):
                doc = first[f_idx] + line_no - 1
                copies = int(in_val[doc]) + int(train_times[doc])
                if not copies:
                    continue
                out = {"text": record["text"], "id": record.get("id", record.get("url")), "origin": f"{path}:{line_no}"}
                for split in ["val"] * int(in_val[doc]) + ["train"] * int(train_times[doc]):
                    sinks[split].add(out)
                bar.update(copies)

    source = {
        "kind": cfg.data.source,
        "paths": cfg.data.paths,
        "docs": len(lengths),
        "chars": int(lengths.sum()),
        **provenance(files),
    }
    return source, chosen.passes, {"train": int(np.count_nonzero(train_times)), "val": len(chosen.val)}


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


def _from_hub(cfg: Experiment, tg: Targets, sinks: dict[str, SplitShards]) -> tuple[dict, int, dict]:
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
    with tqdm(total=tg.train_chars + tg.val_chars, desc="stream hub", unit="char", unit_scale=True) as bar:
        for i, record in enumerate(stream):
            text = record.get("text")
            if not isinstance(text, str):
                raise MorphError(f"{hub_id}: streamed document {i} has no string `text` field")
            split = "val" if sinks["val"].chars < tg.val_chars else "train"
            sinks[split].add({"text": text, "id": record.get("id", record.get("url")),
                              "origin": f"hub:{hub_id}@{revision}#{i}"})
            bar.update(len(text))
            if sinks["train"].chars >= tg.train_chars:
                break
        else:
            raise MorphError(f"data.hub_id: the stream of {hub_id!r} ended before the sample was full ({tg.explain})")
    source = {"kind": "hub", "hub_id": hub_id, "revision": revision, "shuffle_buffer": HUB_SHUFFLE_BUFFER}
    return source, 1, {split: sum(s["docs"] for s in sink.shards) for split, sink in sinks.items()}


def run(args):
    cfg = experiment.load(args.params)
    tg = targets(cfg)
    source_fn = _from_hub if cfg.data.source == "hub" else _from_shards
    with atomic_dir(args.out) as tmp:
        sinks = {split: SplitShards(tmp, [n for n in cfg.sample_shards if n.startswith(f"{split}-")], chars)
                 for split, chars in (("train", tg.train_chars), ("val", tg.val_chars))}
        source, passes, unique = source_fn(cfg, tg, sinks)
        splits = {}
        for split, sink in sinks.items():
            shards = sink.close()
            splits[split] = {"docs": sum(s["docs"] for s in shards), "unique_docs": unique[split],
                             "chars": sum(s["chars"] for s in shards), "shards": shards}
        write_json(
            tmp / MANIFEST,
            {
                "seed": cfg.seed,
                "source": source,
                "targets": {"train_chars": tg.train_chars, "val_chars": tg.val_chars,
                            **{k: getattr(cfg.data, k) for k in ("train_tokens", "val_tokens", "chars_per_token",
                                                                 "margin", "shard_mb")}},
                "splits": splits,
                "repeated": passes > 1,
                "train_passes": passes,
                "library_versions": library_versions("numpy", "zstandard", "datasets"),
            },
        )
    print(f"sampled {splits['train']['docs']:,} train docs ({splits['train']['chars']:,} chars) and "
          f"{splits['val']['docs']:,} val docs ({splits['val']['chars']:,} chars) into "
          f"{len(cfg.sample_shards)} shards in {args.out}"
          + (f"; training documents repeated over {passes} passes" if passes > 1 else ""))
    return 0

"""Build the shipped DCLM-format fixture from the project's public-domain/PSF text corpus.

    python scripts/build_fixture.py [--corpus ../shared/corpus/text-corpus.jsonl.gz] [--out data/raw/fixture]

Writes shard_00000.jsonl.zst ... in DCLM-Baseline's own format (zstd JSON lines with `text`),
keeping the corpus order and each document's id, source and licence. The output is byte-identical
on every run (fixed zstd level, no timestamps), so the committed fixture can be checked against it.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from morph.core.io import atomic_path
from morph.data.shards import write_docs

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpus/text-corpus.jsonl.gz")
    p.add_argument("--out", type=Path, default=ROOT / "data/raw/fixture")
    p.add_argument("--shards", type=int, default=4)
    args = p.parse_args()

    with gzip.open(args.corpus, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    # DCLM-like records: the text plus the metadata the corpus has (no invented URLs).
    records = [{"text": d["text"], "id": d["id"], "source": d["source"], "license": d["license"]} for d in docs]
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("shard_*.jsonl.zst"):
        old.unlink()
    for s in range(args.shards):
        part = records[s * len(records) // args.shards:(s + 1) * len(records) // args.shards]
        target = args.out / f"shard_{s:05d}.jsonl.zst"
        with atomic_path(target) as tmp:
            write_docs(tmp, part)
        print(f"{target}: {len(part)} docs, {sum(len(r['text']) for r in part):,} chars, "
              f"{target.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

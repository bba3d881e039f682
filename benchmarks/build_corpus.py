"""Build a synthetic DCLM-format corpus of a given size from the shipped fixture, for the data benchmarks.

    python benchmarks/build_corpus.py --mb 1000 --out /tmp/corpus-1g [--shard-mb 100] [--seed 0]

The fixture's documents are repeated, each pass in a fresh seeded order and each copy with its own id,
into shard_NNNNN.jsonl.zst files of about --shard-mb million characters until --mb million characters
are written. Keep it outside the repository. Repeated text is kinder to a piece cache than real web
text is, so BPE rates measured on it are an upper bound; GPT-NeoX-20B (no cache) is not affected.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from morph.data.shards import DocWriter, read_docs

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, required=True, help="millions of characters of text to write")
    p.add_argument("--out", type=Path, required=True, help="a new directory, outside the repository")
    p.add_argument("--shard-mb", type=float, default=100.0, help="millions of characters per shard (default 100)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    docs = [r for f in sorted((ROOT / "data/raw/fixture").glob("*.jsonl.zst")) for _, r in read_docs(f)]
    args.out.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(args.seed)
    total = in_shard = shards = copy = 0
    writer = None
    while total < args.mb * 1e6:
        for i in rng.permutation(len(docs)):
            if writer is None or in_shard >= args.shard_mb * 1e6:
                if writer:
                    writer.close()
                writer, in_shard, shards = DocWriter(args.out / f"shard_{shards:05d}.jsonl.zst"), 0, shards + 1
            doc = docs[i]
            writer.write({**doc, "id": f"{doc['id']}#copy{copy}"})
            in_shard += len(doc["text"])
            total += len(doc["text"])
            if total >= args.mb * 1e6:
                break
        copy += 1
    writer.close()
    print(f"wrote {total / 1e6:,.0f} M characters in {shards} shards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

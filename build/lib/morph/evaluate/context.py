"""Which items can be scored at the trained context, and the seeded random draw among them.

lm-eval keeps the last max_length tokens of a request's context and continuation, but it cannot
score a continuation (an answer choice) longer than max_length itself: it stops with an
assertion. At a short trained context (a CI model's 64 tokens, say) some long PIQA answers and
HellaSwag endings are such items. The draw walks a seeded random order of the split and keeps
the first `limit` items that fit: a uniform random sample of the items that can be scored,
found without building every item's requests. Items passed over as too long are counted. The
ids kept go to lm-eval (and to `lm_eval --samples`), so morph and plain lm-eval score the same
items; the tokenizer and max_length are the experiment's, so every model gets the same items.
"""
from __future__ import annotations

import numpy as np


def continuation_tokens(lm, context: str, continuation: str) -> int:
    """Tokens lm-eval scores for one request: its own split of context and continuation."""
    if not context:  # lm-eval conditions an empty context on the prefix token alone
        return len(lm.tok_encode(continuation))
    return len(lm._encode_pair(context, continuation)[1])


def too_long(lm, task, ids: list[int], max_length: int) -> set[int]:
    """The ids among `ids` with an answer longer than max_length tokens."""
    chunk = sorted(ids)
    task.build_all_requests(samples=chunk)  # zero-shot requests, exactly as lm-eval will build them
    # With samples, lm-eval numbers the selected items 0.. in split order.
    return {chunk[inst.doc_id] for inst in task.instances
            if continuation_tokens(lm, *inst.arguments[:2]) > max_length}


def draw(lm, task, name: str, max_length: int, limit: int | None, seed: int) -> tuple[list[int], int]:
    """(sorted ids of up to `limit` random items that fit max_length, items passed over as too long)."""
    size = len(task.eval_docs)
    # Seeded by the task's name too, so adding or reordering tasks leaves the others' draws alone.
    order = [int(i) for i in np.random.default_rng([seed, *name.encode()]).permutation(size)]
    kept, skipped, pos = [], 0, 0
    while pos < size and (limit is None or len(kept) < limit):
        need = size - pos if limit is None else limit - len(kept)
        chunk, pos = order[pos:pos + need], pos + need
        long = too_long(lm, task, chunk, max_length)
        kept += [i for i in chunk if i not in long]
        skipped += len(long)
    return sorted(kept), skipped

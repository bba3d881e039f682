"""Which items can be scored at the trained context.

lm-eval keeps the last max_length tokens of a request's context and continuation, but it cannot
score a continuation (an answer choice) longer than max_length itself: it stops with an
assertion. At a short trained context (a CI model's 64 tokens, say) a few long PIQA answers are
such items. They are left out of the items drawn, counted, and the ids that are drawn go to
lm-eval (and to `lm_eval --samples`), so morph and plain lm-eval score the same items.
The tokenizer and max_length are the experiment's, so every model gets the same items.
"""
from __future__ import annotations


def continuation_tokens(lm, context: str, continuation: str) -> int:
    """Tokens lm-eval scores for one request: its own split of context and continuation."""
    if not context:  # lm-eval conditions an empty context on the prefix token alone
        return len(lm.tok_encode(continuation))
    return len(lm._encode_pair(context, continuation)[1])


def scorable_items(lm, task, max_length: int) -> tuple[list[int], int]:
    """(ids of the items whose every choice fits in max_length tokens, items in the split)."""
    task.build_all_requests()  # zero-shot: every item's requests, exactly as lm-eval will build them
    too_long = {inst.doc_id for inst in task.instances if continuation_tokens(lm, *inst.arguments[:2]) > max_length}
    size = len(task.eval_docs)
    return [i for i in range(size) if i not in too_long], size

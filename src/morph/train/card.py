"""A model card (README.md, the Hugging Face model-card layout) from a run's metrics record: what training knows
(shape, budgets, data, held-out loss). Training writes it into the model folder; the report renders the released
model's card from the same record with its accuracies and how it was chosen added as sections."""
from __future__ import annotations

from morph.core.artifacts.data import SAMPLE_MANIFEST
from morph.core.artifacts.train import RunMetrics

CARD = "README.md"  # in a model folder, where the Hub and `huggingface_hub.ModelCard.load` look


def render(metrics: RunMetrics, sections: dict[str, list[str]] | None = None) -> str:
    """The card of the run `metrics` records (run.py's metrics.json), then each extra section: title -> lines. It
    holds no timing, so a run that reproduces its weights reproduces its model folder byte for byte."""
    s, m = metrics.shape, metrics
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [morph, llama, scaling-laws]",
        "---",
        "",
        f"# {m.run_id}",
        "",
        f"A Llama-architecture causal language model trained from scratch by morph (run `{m.run_id}`, seed "
        f"{m.seed}). It loads with `AutoModelForCausalLM` and `AutoTokenizer`; its context is the "
        f"{m.seq_len} tokens it was trained at (the tokenizer's `model_max_length`).",
        "",
        "## Shape",
        "",
        "| d_model | n_layers | n_heads | n_kv_heads | ffn | vocab | tied embeddings | N (every parameter) | "
        "N (non-embedding) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {s['d_model']} | {s['n_layers']} | {s['n_heads']} | {s['n_kv_heads']} | {s['ffn']} | {s['vocab_size']} | "
        f"{'yes' if s['tie_embeddings'] else 'no'} | {m.params:,} | {m.non_embedding_params:,} |",
        "",
        "## Training budget",
        "",
        f"- {m.tokens_seen:,} tokens" + (f" ({m.multiplier:g} per parameter)" if m.multiplier else "")
        + f", {m.steps:,} steps of {m.batch_size} sequences of {m.seq_len} tokens",
        f"- {m.precision} on {m.world_size} {m.accelerator} rank(s)",  # no timings: same run, same bytes
        "",
        "## Data",
        "",
        f"- tokenizer `{m.provenance['tokenizer']}`; {m.data_epochs:.2f} passes over the experiment's training "
        f"tokens (a seeded document sample; `{SAMPLE_MANIFEST}` names its sources)",
        "",
        "## Held-out loss",
        "",
        f"{m.val_loss:.4f} nats per token over {m.val_tokens:,} held-out tokens.",
    ]
    for title, body in (sections or {}).items():
        lines += ["", f"## {title}", "", *body]
    return "\n".join(lines) + "\n"

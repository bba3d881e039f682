"""Write the decision (results/morph1b.json), a page a person reads (results/report.md) and its figures."""
from __future__ import annotations

import os
from pathlib import Path

from morph.errors import MorphError
from morph.figures import pareto, pyplot, save_png
from morph.io import atomic_path, provenance, read_json, write_json
from morph.workflow import experiment, paths


def add_arguments(p):
    p.add_argument("--params", default=paths.PARAMS, help="experiment file (default: %(default)s)")
    p.add_argument("--selection", default=paths.SELECTION)
    p.add_argument("--runs-dir", default=paths.RUNS)
    p.add_argument("--eval-dir", default=paths.EVAL_DIR)
    p.add_argument("--out", default=paths.DECISION)
    p.add_argument("--markdown", default=paths.REPORT_MD)
    p.add_argument("--figures", default=paths.FIGURES)


def model_entry(role: str, run_dir: Path, eval_path: Path, cand: dict) -> dict:
    metrics, scores = read_json(run_dir / "metrics.json"), read_json(eval_path)
    return {
        "role": role,
        "run_id": metrics["run_id"],
        "shape": {k: cand[k] for k in ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn", "vocab_size")},
        "params": cand["params"],
        "aspect_ratio": cand["aspect_ratio"],
        "tokens_seen": metrics["tokens_seen"],
        "predicted_loss": cand["predicted_loss"],
        "actual_loss": metrics["val_loss"],
        "latency": cand["latency"],
        "accuracy": {task: s["acc"] for task, s in scores["tasks"].items()},
        "accuracy_norm": {task: s.get("acc_norm") for task, s in scores["tasks"].items()},
        "avg_accuracy": scores["average"],
        "eval_limit": scores.get("limit"),
    }


def decide(models: list[dict]) -> tuple[dict, str]:
    """The paper's last step: of the top-k, release the best downstream accuracy (ties: the faster)."""
    top = [m for m in models if m["role"] != "baseline"]
    best = max(top, key=lambda m: (m["avg_accuracy"], -m["latency"]["median_s"]))
    others = ", ".join(f"{m['run_id']} {m['avg_accuracy']:.4f}" for m in top if m is not best)
    why = (
        f"highest average accuracy ({best['avg_accuracy']:.4f}) among the top-{len(top)} shapes ranked by "
        f"predicted loss that meet the latency budget" + (f" (others: {others})" if others else "")
        + f"; {best['speedup_vs_baseline']:.2f}x the baseline's decode speed"
    )
    return best, why


def plot(models: list[dict], figures: Path) -> list[Path]:
    plt = pyplot()

    lat = [m["latency"]["median_s"] for m in models]
    acc = [m["avg_accuracy"] for m in models]
    front = pareto(list(zip(lat, acc)))
    paths = [figures / "accuracy_vs_latency.png", figures / "loss_vs_accuracy.png"]

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m, x, y in zip(models, lat, acc):
        ax.scatter(x, y, marker="*" if m["role"] == "baseline" else "o", s=90)
        ax.annotate(f"{m['run_id']} ({m['role']})", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.plot([lat[i] for i in front], [acc[i] for i in front], "k--", lw=1, label="Pareto frontier")
    ax.set(xlabel="latency, median s (256 new tokens, batch 1)", ylabel="average zero-shot accuracy",
           title="Accuracy against latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, paths[0])

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in models:
        ax.scatter(m["actual_loss"], m["avg_accuracy"], s=60)
        ax.annotate(m["run_id"], (m["actual_loss"], m["avg_accuracy"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.set(xlabel="held-out loss", ylabel="average zero-shot accuracy", title="Loss against accuracy")
    fig.tight_layout()
    save_png(fig, paths[1])
    return paths


def law_choice(decision: dict) -> str:
    """With select.law auto: which form the law zoo chose, by how much, and against run-to-run noise."""
    c = decision.get("law_choice")
    if c is None:
        return ""
    out = f" → {c['form']} (lowest cross-validated error, MSE {c['cv_error']:.3g}"
    if c["runner_up"] is not None:
        out += f"; runner-up {c['runner_up']} at {c['margin']:.3g}×"
    out += (f"; run-to-run noise MSE {c['noise_mse']:.3g})" if c["noise_mse"] is not None
            else "; no replicated runs to compare with noise)")
    return out


def markdown(decision: dict, figure_paths: list[Path], md_path: Path) -> str:
    b, chosen = decision["budgets"], decision["chosen"]
    tasks = sorted({t for m in decision["models"] for t in m["accuracy"]})
    lines = [
        "# Shape decision",
        "",
        f"Budgets: N_C = {b['params']:,} parameters (±{b['tolerance']:.0%}), D_C = {b['tokens']:,} tokens, "
        f"T_C = {b['latency_s']:.3f} s ({b['latency_rule']}); top-k = {b['k']}; "
        f"law: {decision['law']}{law_choice(decision)}.",
        "",
        f"**Chosen: {chosen['run_id']}** (d_model={chosen['shape']['d_model']}, n_layers={chosen['shape']['n_layers']}). "
        f"Why: {decision['why']}.",
        "",
        "| model | role | N | R | predicted loss | held-out loss | latency median [p10, p90] s | speed-up | avg accuracy* |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in decision["models"]:
        lat = m["latency"]
        band = f"[{lat['p10_s']:.3f}, {lat['p90_s']:.3f}]" if "p10_s" in lat else "(predicted)"
        lines.append(
            f"| {m['run_id']} | {m['role']} | {m['params']:,} | {m['aspect_ratio']:.1f} | {m['predicted_loss']:.5f} | "
            f"{m['actual_loss']:.4f} | {lat['median_s']:.3f} {band} | {m['speedup_vs_baseline']:.2f}x | "
            f"{m['avg_accuracy']:.4f} |"
        )
    lines += ["", "\\* The mean over tasks of acc_norm, or acc where a task has none (Winogrande), as lm-eval reports them.",
              "", "Per-task accuracy (acc; lm-eval, zero-shot"
              + (f", first {decision['models'][0]['eval_limit']} items per task" if decision["models"][0]["eval_limit"] else "")
              + "):", "", "| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for m in decision["models"]:
        lines.append(f"| {m['run_id']} | " + " | ".join(f"{m['accuracy'].get(t, float('nan')):.3f}" for t in tasks) + " |")
    caveats = decision["warnings"] + [f"law: {w}" for w in decision["law_warnings"]]
    if caveats:
        lines += ["", "Caveats:", ""] + [f"- {w}" for w in caveats]
    lines += ["", "## Candidates", "", "| shape | N | R | predicted loss | latency s | rank | kept / reason |", "|---|---|---|---|---|---|---|"]
    for c in decision["candidates"]:
        lines.append(
            f"| {c['shape_id']} | {c['params']:,} | {c['aspect_ratio']:.1f} | {c['predicted_loss']:.5f} | "
            f"{c['latency']['median_s']:.3f} | {c.get('rank', '-')} | {'kept' if c['kept'] else c['reason']} |"
        )
    lines += ["", "## Figures", ""]
    for p in figure_paths:
        lines.append(f"![{p.stem}]({os.path.relpath(p, md_path.parent)})")
    lines += ["", "Inputs and their sha256 are listed in `morph1b.json` (`inputs`); `morph lineage` walks them back."]
    return "\n".join(lines) + "\n"


def run(args):
    cfg = experiment.load(args.params)
    selection = read_json(args.selection)
    if selection["law"] != cfg.select.law:
        raise MorphError(f"{args.selection}: selected with law {selection['law']!r}, params say {cfg.select.law!r}")
    runs_dir, eval_dir = Path(args.runs_dir), Path(args.eval_dir)
    by_slot = {c["slot"]: c for c in selection["candidates"] if c.get("slot")}
    roles = [(slot, by_slot[slot]) for slot in cfg.slots if slot in by_slot]
    baseline = cfg.baseline.run_id
    roles.append((baseline, selection["baseline"]))
    models = [
        model_entry("baseline" if name == baseline else name, runs_dir / name, eval_dir / f"{name}.json", cand)
        for name, cand in roles
    ]
    base_latency = models[-1]["latency"]["median_s"]
    for m in models:
        m["speedup_vs_baseline"] = base_latency / m["latency"]["median_s"]
    chosen, why = decide(models)
    if chosen["latency"]["median_s"] > selection["budgets"]["latency_s"]:
        raise MorphError(f"chosen {chosen['run_id']} breaks the latency budget; the selection is inconsistent")
    inputs = [args.selection] + [p for name, _ in roles for p in (runs_dir / name / "metrics.json", eval_dir / f"{name}.json")]
    decision = {
        "budgets": selection["budgets"],
        "law": selection["law"],
        **({"law_choice": selection["law_choice"]} if "law_choice" in selection else {}),
        "chosen": chosen,
        "why": why,
        "models": models,
        "candidates": selection["candidates"],
        "warnings": selection["warnings"],
        "law_warnings": selection["law_warnings"],
        **provenance(inputs),
    }
    figure_paths = plot(models, Path(args.figures))
    md_path = Path(args.markdown)
    text = markdown(decision, figure_paths, md_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(text)
    write_json(args.out, decision)  # last, so a present morph1b.json means a complete report
    print(f"chosen: {chosen['run_id']} ({why})")
    return 0

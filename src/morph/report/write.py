"""Write the decision (results/morph1b.json), a page a person reads (results/report.md), its figures
and the flat numbers `dvc metrics show` reads (results/summary.json)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from morph.errors import MorphError
from morph.figures import pareto, pyplot, save_png
from morph.io import atomic_path, provenance, read_json, write_json
from morph.latency.cost_model import MODEL_SETTING
from morph.latency.table import measured_settings
from morph.report import hindsight
from morph.report.decide import RULES, decide
from morph.report.uncertainty import interval, item_scores, paired_draws
from morph.spec import experiment
from morph.spec.artifacts.common import FIGURES, PARAMS, figure
from morph.spec.artifacts.evaluate import EVAL_DIR, eval_json, lm_eval_out
from morph.spec.artifacts.latency import LATENCY_CSV
from morph.spec.artifacts.report import DECISION, HINDSIGHT_FIGURE, REPORT_FIGURES, REPORT_MD, SUMMARY
from morph.spec.artifacts.select import SELECTION
from morph.spec.artifacts.train import LOSS_CURVE, RUN_METRICS, RUNS, RUNS_CSV


def add_arguments(p):
    p.add_argument("--params", default=PARAMS, help="experiment file (default: %(default)s)")
    p.add_argument("--selection", default=SELECTION)
    p.add_argument("--runs-dir", default=RUNS)
    p.add_argument("--eval-dir", default=EVAL_DIR)
    p.add_argument("--out", default=DECISION)
    p.add_argument("--markdown", default=REPORT_MD)
    p.add_argument("--figures", default=FIGURES)
    p.add_argument("--summary", default=SUMMARY)
    p.add_argument("--runs", default=RUNS_CSV, help="the grid's runs (morph collect), for the knob table")
    p.add_argument("--latency", default=LATENCY_CSV, help="measured latencies, for the knob table")


def model_entry(role: str, run_dir: Path, eval_path: Path, cand: dict) -> dict:
    metrics, scores = read_json(run_dir / RUN_METRICS), read_json(eval_path)
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
        "accuracy_stderr": {task: s["acc_stderr"] for task, s in scores["tasks"].items()},  # lm-eval's
        "avg_accuracy": scores["average"],
        "eval_limit": scores.get("limit"),
        "eval_max_length": scores["max_length"],
        # items passed over because an answer alone is longer than the context the model was trained at
        "eval_too_long": {task: s["too_long"] for task, s in scores["tasks"].items()},
    }


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    """(steps, training loss) from a run's CSV log."""
    if not path.is_file():
        raise MorphError(f"{path}: loss curve not found; re-run `morph train` for this run")
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_loss")]
    return [int(r["step"]) for r in rows], [float(r["train_loss"]) for r in rows]


def plot(models: list[dict], curves: dict[str, Path], figures: Path) -> list[Path]:
    plt = pyplot()

    lat = [m["latency"]["median_s"] for m in models]
    acc = [m["avg_accuracy"] for m in models]
    front = pareto(list(zip(lat, acc)))
    # In the order drawn below; hindsight.plot draws the last.
    paths = [Path(figure(name, figures)) for name in REPORT_FIGURES if name != HINDSIGHT_FIGURE]

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m, x, y in zip(models, lat, acc):
        low, high = m["avg_accuracy_interval"]
        ax.errorbar(x, y, yerr=[[y - low], [high - y]], fmt="*" if m["role"] == "baseline" else "o", ms=9, capsize=3)
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

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in models:
        ax.plot(*read_curve(curves[m["role"]]), lw=1.2, label=f"{m['run_id']} ({m['role']})")
    ax.set(xlabel="step", ylabel="training loss", title="Training loss of the evaluated models")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, paths[2])
    return paths


def knob_effects(cfg, runs_csv: Path, latency_csv: Path) -> list[dict]:
    """Each trained knob variant beside the default shape of its size and depth at the same budget."""
    if not runs_csv.is_file():
        raise MorphError(f"{runs_csv}: runs table not found (run `morph collect`)")
    with open(runs_csv, newline="") as f:
        loss = {r["run_id"]: float(r["loss"]) for r in csv.DictReader(f)}
    latency = {shape_id: settings[MODEL_SETTING]["median"]
               for shape_id, settings in measured_settings(latency_csv, cfg.select.latency_metric).items()
               if MODEL_SETTING in settings}
    key = lambda r: (cfg.size_targets[r.shape.shape_id], r.shape.n_layers, r.multiplier)  # noqa: E731 (a one-line helper)
    knobbed = [r for r in cfg.grid_runs if r.shape.ffn_ratio is not None or r.shape.kv_knob]
    default = {key(r): r for r in cfg.grid_runs if r not in knobbed}
    out = []
    for r in knobbed:
        base = default.get(key(r))
        if base is None:
            continue  # no default shape at this size, depth and budget to compare with
        lat, base_lat = (latency[x.shape.shape_id] for x in (r, base))
        out.append({"run_id": r.run_id, "default": base.run_id, "mlp_attention_ratio": r.shape.mlp_attention_ratio,
                    "default_mlp_attention_ratio": base.shape.mlp_attention_ratio, "n_kv_heads": r.shape.n_kv_heads,
                    "default_n_kv_heads": base.shape.n_kv_heads, "params": r.shape.params(),
                    "loss": loss[r.run_id], "loss_change": loss[r.run_id] - loss[base.run_id],
                    "latency_s": lat, "latency_ratio": lat / base_lat})
    return out


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


def noise_floor(noise: dict) -> list[str]:
    """The run-to-run spread and the law's held-out error beside it."""
    cv = f"the law's cross-validated RMSE is {noise['law_cv_rmse']:.4f}" if noise["law_cv_rmse"] is not None else \
        "the law has no cross-validated error"
    if noise["loss_sd"] is None:
        return [f"Noise floor: no replicated runs (grid.replicates), so no run-to-run sd; {cv}."]
    runs = ", ".join(f"{r['run_id']} over {r['seeds']} seeds: sd {r['loss_sd']:.4f}, range {r['loss_range']:.4f}"
                     for r in noise["replicated_runs"])
    return [f"Noise floor: run-to-run sd of the held-out loss {noise['loss_sd']:.4f} ({runs}); {cv}."]


def hindsight_lines(h: dict | None) -> list[str]:
    """The law's ranking against the candidates trained at D_C."""
    if h is None:
        return ["No candidate beyond the top-k was trained (select.validate: none), so the law's ranking is not "
                "checked against measured losses here."]
    sp, err, reg = h["spearman"], h["law_error"], h["regret"]
    rho = (f"Spearman ρ(predicted, measured) = {sp['rho']:+.2f}" + (
        f" [{sp['interval'][0]:+.2f}, {sp['interval'][1]:+.2f}] ({sp['confidence']:.0%} bootstrap over candidates)"
        if sp["interval"] else " (no interval: fewer than 4 candidates)") if sp["rho"] is not None
        else "Spearman ρ undefined (fewer than 3 distinct values)")
    out = [f"Validation ({h['validate']}): {h['n_feasible_trained']} of {h['n_feasible']} feasible candidates "
           f"trained at D_C. {rho} over n = {sp['n']}.",
           ""]
    if err["rmse"] is not None:
        cv = f"{h['law_cv_rmse']:.4f}" if h["law_cv_rmse"] is not None else "n/a"
        sd = f"{h['loss_sd']:.4f}" if h["loss_sd"] is not None else "n/a"
        out += [f"The law's error on them: RMSE {err['rmse']:.4f} (bias {err['bias']:+.4f}), beside its "
                f"cross-validated RMSE {cv} and the run-to-run sd {sd}.", ""]
    if reg is not None:
        in_sd = f" ({reg['sd']:+.1f} sd)" if reg["sd"] is not None else ""
        out += [f"Regret of the law's top-1 {reg['top_1']}: {reg['loss']:+.4f}{in_sd} against the best trained "
                f"feasible candidate {h['best']['shape_id']} ({h['best']['measured_loss']:.4f}); the top-k's best "
                f"({reg['top_k_best']}) is {reg['top_k_loss']:+.4f} from it: "
                + ("within noise." if h["top_k_has_best"] else "beyond noise."), ""]
    out += ["| candidate | run | feasible | rank | R | latency s | predicted loss [interval] | measured loss |",
            "|---|---|---|---|---|---|---|---|"]
    for r in sorted(h["trained"], key=lambda r: r["latency_s"]):
        band = (f" [{r['predicted_interval'][0]:.4f}, {r['predicted_interval'][1]:.4f}]"
                if r["predicted_interval"] else "")
        out.append(f"| {r['shape_id']} | {r['run_id']} | {'yes' if r['feasible'] else 'no'} | {r['rank'] or '-'} | "
                   f"{r['aspect_ratio']:.1f} | {r['latency_s']:.3f} | {r['predicted_loss']:.4f}{band} | "
                   f"{r['measured_loss']:.4f} |")
    return out


def markdown(decision: dict, figure_paths: list[Path], md_path: Path) -> str:
    b, chosen, rule, v = decision["budgets"], decision["chosen"], decision["decision_rule"], decision["verdict"]
    level = f"{rule['confidence']:.0%}"
    tasks = sorted({t for m in decision["models"] for t in m["accuracy"]})
    first = decision["models"][0]
    items = f"a seeded random {first['eval_limit']} items per task" if first["eval_limit"] else "every item"
    ranking = decision["ranking"]
    released = (f"**Released: {chosen['run_id']}** (d_model={chosen['shape']['d_model']}, "
                f"n_layers={chosen['shape']['n_layers']})" if chosen else "**Nothing released.**")
    lines = [
        "# Shape decision",
        "",
        f"**Verdict: {v['kind']}.** {v['statement']}.",
        "",
        f"{released} Rule **{rule['name']}**: {rule['statement']}.",
        "",
        f"Budgets: N_C = {b['params']:,} parameters (±{b['tolerance']:.0%}), D_C = {b['tokens']:,} tokens, "
        f"T_C = {b['latency_s']:.3f} s ({b['latency_rule']}); top-k = {b['k']}; "
        f"law: {decision['law']}{law_choice(decision)}.",
        "",
        f"Ranking ({'informative' if ranking['informative'] else 'not informative'}, judged on {ranking['basis']}): "
        f"{ranking['statement']}.",
        "",
        f"R effect: {decision['r_effect']['statement']}" + (
            f"; γ = {decision['r_effect']['gamma']:.3g}" + (
                f" [{decision['r_effect']['gamma_ci'][0]:.3g}, {decision['r_effect']['gamma_ci'][1]:.3g}]"
                if decision["r_effect"]["gamma_ci"] else "") if decision["r_effect"]["gamma"] is not None else "")
        + ".",
        "",
        *noise_floor(decision["noise"]),
        "",
        "## Against the baseline",
        "",
        f"| model | Δ held-out loss | in sd | within noise | Δ accuracy [{level} interval] | speed-up | matches |",
        "|---|---|---|---|---|---|---|",
        *(f"| {c['run_id']} | {c['delta_loss']:+.4f} | "
          + (f"{c['delta_loss_sd']:+.1f}" if c["delta_loss_sd"] is not None else "—")
          + f" | {'yes' if c['loss_within_noise'] else 'no'} | {c['delta_accuracy']:+.4f} "
            f"[{c['accuracy_interval'][0]:+.4f}, {c['accuracy_interval'][1]:+.4f}] | {c['speedup']:.2f}x | "
            f"{'yes' if c['matches'] else 'no'} |" for c in v["versus_baseline"]),
        "",
        "## Hindsight: the law against trained candidates",
        "",
        *hindsight_lines(decision["hindsight"]),
        "",
        "## Evaluated models",
        "",
        f"| model | role | N | R | predicted loss | held-out loss | latency median [p10, p90] s | speed-up | "
        f"avg accuracy* [{level} interval] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in decision["models"]:
        lat = m["latency"]
        band = f"[{lat['p10_s']:.3f}, {lat['p90_s']:.3f}]" if "p10_s" in lat else "(predicted)"
        low, high = m["avg_accuracy_interval"]
        lines.append(
            f"| {m['run_id']} | {m['role']} | {m['params']:,} | {m['aspect_ratio']:.1f} | {m['predicted_loss']:.5f} | "
            f"{m['actual_loss']:.4f} | {lat['median_s']:.3f} {band} | {m['speedup_vs_baseline']:.2f}x | "
            f"{m['avg_accuracy']:.4f} [{low:.4f}, {high:.4f}] |"
        )
    lines += ["", "\\* The mean over tasks of acc_norm, or acc where a task has none (Winogrande), as lm-eval reports "
              f"them; the interval is a {rule['bootstrap']}-draw bootstrap over the scored items "
              f"(resampled within each task, the same draws for every model)."]
    lines += ["", f"Per-task accuracy (acc ± its standard error; lm-eval, zero-shot, "
              f"{items}, scored at the trained context of {first['eval_max_length']} tokens):", "",
              "| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for m in decision["models"]:
        cells = [f"{m['accuracy'][t]:.3f} ± {m['accuracy_stderr'][t]:.3f}" for t in tasks]
        lines.append(f"| {m['run_id']} | " + " | ".join(cells) + " |")
    caveats = decision["warnings"] + [f"law: {w}" for w in decision["law_warnings"]]
    caveats += [f"{task}: {n:,} items drawn had an answer longer than the trained context ({first['eval_max_length']} "
                "tokens), which lm-eval cannot score, and were passed over for others"
                for task, n in first["eval_too_long"].items() if n]
    if caveats:
        lines += ["", "Caveats:", ""] + [f"- {w}" for w in caveats]
    lines += ["", "## Candidates", "", "| shape | N | R | predicted loss | latency s | rank | law cannot separate it "
              "from | kept / reason |", "|---|---|---|---|---|---|---|---|"]
    for c in decision["candidates"]:
        lines.append(
            f"| {c['shape_id']} | {c['params']:,} | {c['aspect_ratio']:.1f} | {c['predicted_loss']:.5f} | "
            f"{c['latency']['median_s']:.3f} | {c.get('rank', '-')} | "
            f"{', '.join(c.get('indistinguishable_from', [])) or '-'} | {'kept' if c['kept'] else c['reason']} |"
        )
    if decision["knobs"]:
        lines += ["", "## Architecture knobs", "",
                  "Each grid run with an ffn ratio or grouped-query knob against the default shape of its size and "
                  "depth at the same budget (the law sees these runs only through N, D and R):", "",
                  "| run | default | MLP:attention | kv heads | N | held-out loss | Δ loss | latency s | × default |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {k['run_id']} | {k['default']} | {k['mlp_attention_ratio']:.2f} (default "
                  f"{k['default_mlp_attention_ratio']:.2f}) | {k['n_kv_heads']} (default {k['default_n_kv_heads']}) | "
                  f"{k['params']:,} | {k['loss']:.4f} | {k['loss_change']:+.4f} | {k['latency_s']:.3f} | "
                  f"{k['latency_ratio']:.2f} |" for k in decision["knobs"]]
    lines += ["", "## Figures", ""]
    for p in figure_paths:
        lines.append(f"![{p.stem}]({os.path.relpath(p, md_path.parent)})")
    lines += ["", "Inputs and their sha256 are listed in `morph1b.json` (`inputs`); `morph lineage` walks them back."]
    return "\n".join(lines) + "\n"


def summary(decision: dict) -> dict:
    """One flat mapping of the numbers worth comparing across experiments (`dvc metrics show`, `dvc exp show`)."""
    v, h = decision["verdict"], decision["hindsight"] or {}
    released = next((c for c in v["versus_baseline"] if c["run_id"] == v["released"]), None)
    flat = {"chosen": decision["chosen"]["role"] if decision["chosen"] else "none",
            "decision_rule": decision["decision_rule"]["name"], "verdict": v["kind"],
            "released/delta_loss": released["delta_loss"] if released else None,
            "released/delta_loss_sd": released["delta_loss_sd"] if released else None,
            "released/speedup": v["speedup"],
            "hindsight/spearman": (h.get("spearman") or {}).get("rho"),
            "hindsight/regret": (h.get("regret") or {}).get("loss"),
            "hindsight/regret_sd": (h.get("regret") or {}).get("sd")}
    flat = {k: x for k, x in flat.items() if x is not None}
    for m in decision["models"]:
        role = m["role"]
        flat |= {f"{role}/avg_accuracy": m["avg_accuracy"], f"{role}/avg_accuracy_low": m["avg_accuracy_interval"][0],
                 f"{role}/avg_accuracy_high": m["avg_accuracy_interval"][1], f"{role}/held_out_loss": m["actual_loss"],
                 f"{role}/predicted_loss": m["predicted_loss"], f"{role}/latency_s": m["latency"]["median_s"],
                 f"{role}/speedup_vs_baseline": m["speedup_vs_baseline"]}
        flat |= {f"{role}/acc/{task}": acc for task, acc in m["accuracy"].items()}
    return flat


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
        model_entry("baseline" if name == baseline else name, runs_dir / name, Path(eval_json(name, eval_dir)), cand)
        for name, cand in roles
    ]
    base_latency = models[-1]["latency"]["median_s"]
    for m in models:
        m["speedup_vs_baseline"] = base_latency / m["latency"]["median_s"]
    ev = cfg.evaluate
    # Per-item scores from lm-eval's samples (<eval-dir>/<run>/), keyed like the draws by run id.
    per_item = {m["run_id"]: item_scores(read_json(eval_json(name, eval_dir)), Path(lm_eval_out(name, eval_dir)))
                for m, (name, _) in zip(models, roles)}
    draws = paired_draws(per_item, ev.bootstrap, cfg.seed)
    for m in models:
        m["avg_accuracy_interval"] = interval(draws[m["run_id"]], ev.confidence)
    hind = None
    if cfg.validation_runs:
        measured = {c["shape_id"]: {"run_id": m["run_id"], "loss": m["actual_loss"]}
                    for c in by_slot.values() for m in models if m["role"] == c["slot"]}
        for r in cfg.validation_runs:
            metrics = read_json(runs_dir / r.run_id / RUN_METRICS)
            measured.setdefault(r.shape.shape_id, {"run_id": r.run_id, "loss": metrics["val_loss"]})
        hind = hindsight.check(selection, measured, selection["noise"]["loss_sd"], cfg.select.validate,
                               ev.confidence, ev.bootstrap, cfg.seed)
    verdict = decide(models, draws, ev.confidence, selection["noise"]["loss_sd"], hind)
    chosen = verdict.pop("released")
    if chosen is not None and chosen["latency"]["median_s"] > selection["budgets"]["latency_s"]:
        raise MorphError(f"chosen {chosen['run_id']} breaks the latency budget; the selection is inconsistent")
    curves = {m["role"]: runs_dir / name / LOSS_CURVE for m, (name, _) in zip(models, roles)}
    inputs = [args.selection, args.runs, args.latency] + [p for name, _ in roles for p in (
        runs_dir / name / RUN_METRICS, eval_json(name, eval_dir), lm_eval_out(name, eval_dir),
        runs_dir / name / LOSS_CURVE)]
    inputs += [runs_dir / r.run_id / RUN_METRICS for r in cfg.validation_runs]
    decision = {
        "verdict": {"kind": verdict["verdict"], "statement": verdict["statement"],
                    "released": chosen["run_id"] if chosen else None,
                    "speedup": chosen["speedup_vs_baseline"] if chosen else None,
                    "versus_baseline": verdict["versus_baseline"], "noise": verdict["noise"]},
        "budgets": selection["budgets"],
        "law": selection["law"],
        **({"law_choice": selection["law_choice"]} if "law_choice" in selection else {}),
        "chosen": chosen,
        "decision_rule": {"name": verdict["rule"], "statement": RULES[verdict["rule"]], "confidence": ev.confidence,
                          "bootstrap": ev.bootstrap, "seed": cfg.seed},
        "hindsight": hind,
        "models": models,
        "noise": selection["noise"],
        "ranking": selection["ranking"],
        "r_effect": selection["r_effect"],
        "candidates": selection["candidates"],
        "knobs": knob_effects(cfg, Path(args.runs), Path(args.latency)),
        "warnings": selection["warnings"],
        "law_warnings": selection["law_warnings"],
        **provenance(inputs),
    }
    figure_paths = plot(models, curves, Path(args.figures))
    figure_paths.append(Path(figure(HINDSIGHT_FIGURE, args.figures)))
    hindsight.plot(hind or {"trained": [], "spearman": {"rho": None}}, models[-1], selection["noise"]["loss_sd"],
                   ev.confidence, figure_paths[-1])
    md_path = Path(args.markdown)
    text = markdown(decision, figure_paths, md_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(text)
    write_json(args.summary, summary(decision))
    write_json(args.out, decision)  # last, so a present morph1b.json means a complete report
    print(f"verdict: {verdict['verdict']}: {verdict['statement']}")
    return 0

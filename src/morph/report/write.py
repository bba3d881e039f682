"""Write the decision (results/morph1b.json), a page a person reads (results/report.md), its figures
and the flat numbers `dvc metrics show` reads (results/summary.json)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from morph.core import experiment
from morph.core.artifacts.common import figure
from morph.core.artifacts.evaluate import eval_json, lm_eval_out
from morph.core.artifacts.report import (
    HINDSIGHT_FIGURE,
    PARETO_MEASURED,
    REPORT_FIGURES,
    Decision,
)
from morph.core.artifacts.select import Selection, slot
from morph.core.artifacts.train import LOSS_CURVE, RUN_METRICS, RUN_MODEL, RunMetrics
from morph.core.errors import MorphError
from morph.core.figures import pareto, pyplot, save_png
from morph.core.io import atomic_path, provenance, read_json, write_json
from morph.latency.cost_model import MODEL_SETTING
from morph.latency.table import measured_settings
from morph.report import hindsight, measured
from morph.report.decide import decide, decide_predicted, per_stack, speed
from morph.report.uncertainty import headline_metric, interval, item_scores, paired_draws, task_levels
from morph.select.pareto_figure import plot_pareto
from morph.train import card


def model_entry(role: str, run_dir: Path, eval_path: Path, cand: dict) -> dict:
    metrics, scores = RunMetrics.read(run_dir / RUN_METRICS), read_json(eval_path)
    return {
        "role": role,
        "run_id": metrics.run_id,
        "shape_id": cand["shape_id"],
        "shape": {k: cand[k] for k in ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn", "vocab_size")},
        "params": cand["params"],
        "aspect_ratio": cand["aspect_ratio"],
        "tokens_seen": metrics.tokens_seen,
        "predicted_loss": cand["predicted_loss"],
        "actual_loss": metrics.val_loss,
        "latency": cand["latency"],
        # One metric throughout: each task's headline metric, the one the average and its interval use.
        "accuracy": {task: s[headline_metric(s)] for task, s in scores["tasks"].items()},
        # lm-eval's; None where it wrote none
        "accuracy_stderr": {task: s.get(f"{headline_metric(s)}_stderr") for task, s in scores["tasks"].items()},
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


def legend_beside(ax) -> None:
    """Each model named in a legend beside the axes: labels beside close points overlap, a legend never does."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))


def plot(models: list[dict], curves: dict[str, Path], figures: Path) -> list[Path]:
    """The evaluated models' figures, one colour per model throughout, the release ringed (and drawn thicker)."""
    plt = pyplot()

    lat = [m["latency"]["median_s"] for m in models]
    acc = [m["avg_accuracy"] for m in models]
    front = pareto(list(zip(lat, acc)))
    paths = [Path(figure(name, figures)) for name in REPORT_FIGURES[:3]]  # in the order drawn below
    color = {m["run_id"]: f"C{i % 10}" for i, m in enumerate(models)}
    name = {m["run_id"]: f"{m['run_id']} ({m['role']})" for m in models}

    def ring(ax, m, x, y):
        if m["role"] == "release":
            ax.scatter(x, y, s=260, facecolors="none", edgecolors="k", linewidths=1.5, zorder=4)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m, x, y in zip(models, lat, acc):
        low, high = m["avg_accuracy_interval"]
        ax.errorbar(x, y, yerr=[[y - low], [high - y]], fmt="*" if m["role"] == "baseline" else "o", ms=9, capsize=3,
                    color=color[m["run_id"]], label=name[m["run_id"]])
        ring(ax, m, x, y)
    ax.plot([lat[i] for i in front], [acc[i] for i in front], "k--", lw=1, label="Pareto frontier")
    ax.set(xlabel="latency, median s (256 new tokens, batch 1)", ylabel="average zero-shot accuracy",
           title="Accuracy against latency")
    legend_beside(ax)
    fig.tight_layout()
    save_png(fig, paths[0])

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in models:
        ax.scatter(m["actual_loss"], m["avg_accuracy"], s=60, color=color[m["run_id"]], label=name[m["run_id"]],
                   marker="*" if m["role"] == "baseline" else "o")
        ring(ax, m, m["actual_loss"], m["avg_accuracy"])
    ax.set(xlabel="held-out loss of the model scored", ylabel="average zero-shot accuracy",
           title="Loss against accuracy")
    legend_beside(ax)
    fig.tight_layout()
    save_png(fig, paths[1])

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in models:
        ax.plot(*read_curve(curves[m["run_id"]]), lw=2.4 if m["role"] == "release" else 1.0,
                color=color[m["run_id"]], label=name[m["run_id"]])
    ax.set(xlabel="step", ylabel="training loss", title="Training loss of the evaluated models")
    legend_beside(ax)
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
    # RMSE, the unit of every other error in the report; the zoo ranks by MSE, so the margin is a ratio of MSEs.
    out = f" → {c['form']} (lowest cross-validated error, RMSE {c['cv_error'] ** 0.5:.3g}"
    if c["runner_up"] is not None:
        out += f"; runner-up {c['runner_up']} at {c['margin']:.3g}× its MSE"
    out += (f"; run-to-run noise sd {c['noise_mse'] ** 0.5:.3g})" if c["noise_mse"] is not None
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
    return [f"Noise floor of the grid (the law's, not the verdict's): run-to-run sd of the held-out loss "
            f"{noise['loss_sd']:.4f}, df {measured.grid_df(noise)} ({runs}); {cv}."]


def hindsight_lines(h: dict | None) -> list[str]:
    """The law's ranking scored against the candidates measured at D_C."""
    if h is None:
        return ["No candidate beyond the top-k was trained (select.validate: none), so the law's ranking is not "
                "checked against measured losses here."]
    sp, err, reg = h["spearman"], h["law_error"], h["regret"]
    rho = (f"Spearman ρ(predicted, measured) = {sp['rho']:+.2f}, one-sided permutation p = {sp['p_value']:.3f} "
           f"({sp['method']})" if sp["rho"] is not None else "Spearman ρ undefined (fewer than 3 distinct values)")
    out = [f"Validation ({h['validate']}): {h['n_feasible_trained']} of {h['n_feasible']} feasible candidates "
           f"trained at D_C. {rho} over n = {sp['n']}.",
           ""]
    if err["rmse"] is not None:
        cv = f"{h['law_cv_rmse']:.4f}" if h["law_cv_rmse"] is not None else "n/a"
        sd = f"{h['loss_sd']:.4f}" if h["loss_sd"] is not None else "n/a"
        out += [f"The law's error on them: RMSE {err['rmse']:.4f} (bias {err['bias']:+.4f}), beside its "
                f"cross-validated RMSE {cv} and the run-to-run sd {sd}; its 95% intervals hold "
                f"{err['covered']} of {err['with_interval']} measured losses.", ""]
    if reg is not None:
        in_sd = f" ({reg['sd']:+.1f} sd)" if reg["sd"] is not None else ""
        out += [f"Regret of the law's top-1 {reg['top_1']}: {reg['loss']:+.4f}{in_sd} against the best measured "
                f"feasible candidate {h['best']['shape_id']} ({h['best']['measured_loss']:.4f}); a pick with no signal "
                f"expects {reg['no_signal_expected']:+.4f}, and does this well or better with probability "
                f"{reg['no_signal_p']:.2f}.", ""]
    out += ["| candidate | run | feasible | rank | R | latency s | predicted loss [interval] | measured loss (mean) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in sorted(h["trained"], key=lambda r: r["latency_s"]):
        band = (f" [{r['predicted_interval'][0]:.4f}, {r['predicted_interval'][1]:.4f}]"
                if r["predicted_interval"] else "")
        out.append(f"| {r['shape_id']} | {r['run_id']} | {'yes' if r['feasible'] else 'no'} | {r['rank'] or '-'} | "
                   f"{r['aspect_ratio']:.1f} | {r['latency_s']:.3f} | {r['predicted_loss']:.4f}{band} | "
                   f"{r['measured_loss']:.4f} |")
    return out


def verdict_record(v: dict, chosen: dict, chosen_dir: str, base: dict, noise, margin: float, cfg,
                   predicted: bool) -> dict:
    """The verdict as morph1b.json carries it: the release (whose run directory is `chosen_dir`), its test against
    the baseline with delta, sigma and its df, r, and the speed-up, each with its interval, and the one line that
    says it all."""
    test, m = v["versus_baseline"], cfg.select.margin
    out = {"kind": v["verdict"], "basis": "predicted, not measured" if predicted else "measured",
           "released": chosen["run_id"], "shape_id": v["shape"]["shape_id"],
           "weights": str(Path(chosen_dir) / RUN_MODEL),
           "margin": margin, "margin_rule": (f"{m.value:g} x the baseline's mean held-out loss {base['mean_loss']:.4f}"
                                             if m.of == "baseline_loss" else f"{m.value:g} (absolute)"),
           "delta_loss": test["delta_loss"], "upper": test["upper"], "lower": test["lower"],
           "comparisons": test["comparisons"], "better_beyond_noise": test["better_beyond_noise"],
           "seeds_to_decide": test["seeds_to_decide"],
           "noise": noise.to_dict() if noise is not None and not predicted else None, "seeds": cfg.target_seeds,
           "speedup": chosen["speedup_vs_baseline"], "speedup_interval": speedup_interval(chosen, base),
           "within_margin_of_best": v["within_margin_of_best"], "best_measured": v["best_measured"],
           "claims_within_margin_of_best": v["claims_within_margin_of_best"], "tied_in_speed": v["tied_in_speed"],
           "seeds_to_show_the_best": v["seeds_to_show_the_best"],
           "mcb_upper": v["mcb_upper"], "versus_baseline": v["all_versus_baseline"]}
    return out | {"headline": headline(out, base["run_id"])}


def headline(v: dict, base: str) -> str:
    """The verdict in one line: what a reader who reads nothing else must know."""
    bound = (f"one-sided 95% bounds [{v['lower']:+.4f}, {v['upper']:+.4f}]"
             + (f", simultaneous over {v['comparisons']} shapes" if v["comparisons"] > 1 else "")
             if v["upper"] is not None else "no interval (no noise estimate)")
    noise = v["noise"]
    sigma = (f"σ = {noise['sd']:.4f} (df {noise['df']}, 95% [{noise['sd_interval'][0]:.4f}, "
             f"{noise['sd_interval'][1]:.4f}]), r = {v['seeds']} seed(s) per shape" if noise else
             "the law's bootstrap refits" if v["basis"] != "measured" else "no noise estimate")
    faster = f"{v['speedup']:.2f}x the baseline's decode speed" + (
        f" [{v['speedup_interval'][0]:.2f}, {v['speedup_interval'][1]:.2f}] (best timing rounds to next best)"
        if v["speedup_interval"] else "")
    said = {"matches": "matches", "worse": "is worse than", "inconclusive": "is not shown to match"}[v["kind"]]
    better = "; better than the baseline beyond noise" if v["better_beyond_noise"] else ""
    more = (f"; about {v['seeds_to_decide']} seeds per shape would decide it" if v["seeds_to_decide"] else "")
    cost = (f"; it costs Δ loss {v['delta_loss']:+.4f} for the speed-up" if v["kind"] == "worse" else "")
    return (f"{v['kind'].upper()} ({v['basis']}): {v['released']} {said} the baseline {base} within δ = "
            f"{v['margin']:.4f} ({v['margin_rule']}): Δ held-out loss {v['delta_loss']:+.4f}, {bound}; {sigma}; "
            f"{faster}{better}{cost}{more}")


def below_chance(accuracy: float, level: dict) -> bool:
    """An accuracy that says nothing of the model: at or below chance, or below always giving the most common
    answer."""
    return accuracy <= level["chance"] or level["constant_answer"] is not None and accuracy < level["constant_answer"]


def accuracy_lines(models: list[dict], levels: dict[str, dict]) -> list[str]:
    """The per-task table: each task's headline metric (the one the average uses) with its chance level, and each
    score that does not beat it marked."""
    tasks = sorted(levels)
    first = models[0]
    items = f"a seeded random {first['eval_limit']} items per task" if first["eval_limit"] else "every item"
    out = [f"Per-task accuracy (the metric named under each task, the one the average uses, ± lm-eval's standard "
           f"error; zero-shot, {items}, scored at the trained context of {first['eval_max_length']} tokens). "
           "Chance is 1 / the number of choices over the items scored; where one answer is the gold of many items "
           "(BoolQ's \"yes\"), always giving it scores the rate in brackets. † marks a score at or below chance or "
           "below that rate: it says nothing of the model.", "",
           "| model | " + " | ".join(f"{t} ({levels[t]['metric']})" for t in tasks) + " |",
           "|---|" + "---|" * len(tasks),
           "| chance [most common answer] | " + " | ".join(
               f"{levels[t]['chance']:.3f}" + (f" [{levels[t]['constant_answer']:.3f}]"
                                               if (levels[t]["constant_answer"] or 0) > levels[t]["chance"] else "")
               for t in tasks) + " |"]
    for m in models:
        cells = [f"{m['accuracy'][t]:.3f}"
                 + (f" ± {m['accuracy_stderr'][t]:.3f}" if m["accuracy_stderr"][t] is not None else "")
                 + (" †" if below_chance(m["accuracy"][t], levels[t]) else "") for t in tasks]
        out.append(f"| {m['run_id']} | " + " | ".join(cells) + " |")
    return out


def params_counted(decision: dict) -> str:
    """What N counts: the budget and the tables count every parameter; the law counts what fit.params_count chose."""
    law_n = {"total": "every parameter too", "non-embedding": "the non-embedding parameters"}[decision["params_count"]]
    return (f"N_C and every N the report shows count every parameter, embeddings included; the law's N counts {law_n} "
            "(the count fit.params_count chose)")


def stack_lines(v: dict) -> list[str]:
    """With several timed backends: each one's release and speed-up, and whether the decision depends on it."""
    stacks = v.get("by_backend") or {}
    if len(stacks) < 2:
        return []
    said = "; ".join(f"{b}: {s['release']} at {s['speedup']:.2f}x" if s["release"] else f"{b}: no feasible shape"
                     for b, s in stacks.items())
    moves = len({s["release"] for s in stacks.values()}) > 1 or len({tuple(s["feasible"]) for s in stacks.values()}) > 1
    return [(f"**The decision depends on the serving stack** (T_C judged on {v['latency_backend']}): {said}."
             if moves else f"Every timed serving stack releases the same shape: {said}."), ""]


def markdown(decision: dict, figure_paths: list[Path], md_path: Path) -> str:
    """report.md: the decision first, then its evidence against the baseline, the law in hindsight, the evaluated
    models, the candidates, the knobs and the figures."""
    lines = [*decision_lines(decision, md_path), "", *versus_lines(decision), "",
             "## Hindsight: the law against trained candidates", "", *hindsight_lines(decision["hindsight"]), "",
             *model_lines(decision), *caveat_lines(decision), "", *candidate_lines(decision), *knob_lines(decision),
             "", "## Figures", "", *(f"![{p.stem}]({os.path.relpath(p, md_path.parent)})" for p in figure_paths),
             "", "Inputs and their sha256 are listed in `morph1b.json` (`inputs`); `morph lineage` walks them back."]
    return "\n".join(lines) + "\n"


def decision_lines(decision: dict, md_path: Path) -> list[str]:
    """The verdict, the release and the rule, the not-worse set, then the budgets, the law and the noise."""
    b, chosen, rule, v = decision["budgets"], decision["chosen"], decision["decision_rule"], decision["verdict"]
    first = decision["models"][0]
    items = f"a seeded random {first['eval_limit']} items per task" if first["eval_limit"] else "every item"
    ranking = decision["ranking"]
    acc = v["accuracy"]
    within = ", ".join(v["within_margin_of_best"]) or (
        "none: at this noise no shape can be shown within δ of the best" + (
            f"; about {v['seeds_to_show_the_best']} seeds per shape would" if v["seeds_to_show_the_best"] else ""))
    lines = [
        "# Shape decision",
        "",
        f"**{v['headline']}.**",
        "",
        *stack_lines(v),
        *([f"**Timing disturbed:** other work competed while {', '.join(v['disturbed_timings'])} were timed "
           "(latency.on_disturbed: warn, or retries ran out); speed is judged on each shape's best round, which "
           "interference can only slow, so read close speed-ups with care.", ""] if v["disturbed_timings"] else []),
        f"**Released: {chosen['run_id']}** (d_model={chosen['shape']['d_model']}, "
        f"n_layers={chosen['shape']['n_layers']}; weights `{v['weights']}`, model card "
        f"[{Path(v['model_card']).name}]({os.path.relpath(v['model_card'], md_path.parent)})). "
        f"Rule: {rule['statement']}.",
        "",
        (f"Measured not-worse-than-best set (within δ of the best measured, {v['best_measured']}): {within}. "
         f"Tied in speed with the release (overlapping timing intervals): {', '.join(v['tied_in_speed'])}."
         if v["basis"] == "measured" else
         "Predicted, not measured: select.validate is none, so no candidate ran with seeds at D_C; the verdict rests "
         "on the law's bootstrap interval alone."),
        "",
        f"Accuracy is descriptive ({items}): Δ average accuracy {acc['delta']:+.4f} "
        f"[{acc['interval'][0]:+.4f}, {acc['interval'][1]:+.4f}], not part of the verdict.",
        "",
        f"Budgets: N_C = {b['params']:,} parameters (±{b['tolerance']:.0%}), D_C = {b['tokens']:,} tokens, "
        f"T_C = {b['latency_s']:.3f} s ({b['latency_rule']}); top-k = {b['k']}; "
        f"law: {decision['law']}{law_choice(decision)}. {params_counted(decision)}.",
        "",
        f"The law chose what to train; once measured, its ranking is scored, not obeyed. Ranking "
        f"({'informative' if ranking['informative'] else 'not informative'}, judged on {ranking['basis']}): "
        f"{ranking['statement']}.",
        "",
        f"R effect: {decision['r_effect']['statement']}" + (
            f"; γ = {decision['r_effect']['gamma']:.3g}" + (
                f" [{decision['r_effect']['gamma_ci'][0]:.3g}, {decision['r_effect']['gamma_ci'][1]:.3g}]"
                if decision["r_effect"]["gamma_ci"] else "") if decision["r_effect"]["gamma"] is not None else "")
        + ".",
        "",
        *noise_floor(decision["noise"]),
    ]
    return lines


def versus_lines(decision: dict) -> list[str]:
    """Each measured shape against the baseline, with its MCB bound and speed-up."""
    v = decision["verdict"]
    return [
        "## Against the baseline",
        "",
        f"Each measured feasible shape's mean held-out loss over its seeds minus the baseline's, with one-sided 95% "
        f"bounds simultaneous over the {v['comparisons']} shapes, against δ = {v['margin']:.4f}:",
        "",
        "| shape | Δ held-out loss | bounds | verdict | MCB: above the best by at most | speed-up |",
        "|---|---|---|---|---|---|",
        *(f"| {shape} | {c['delta_loss']:+.4f} | "
          + (f"[{c['lower']:+.4f}, {c['upper']:+.4f}]" if c["upper"] is not None else "—")
          + f" | {c['verdict']}{', better beyond noise' if c['better_beyond_noise'] else ''} | "
          + (f"{v['mcb_upper'][shape]:.4f}" if v["mcb_upper"].get(shape) is not None else "—")
          + f" | {next(m['speedup_vs_baseline'] for m in decision['models'] if m['shape_id'] == shape):.2f}x |"
          for shape, c in v["versus_baseline"].items()),
    ]


def model_lines(decision: dict) -> list[str]:
    """The evaluated models' table, then their accuracies per task."""
    rule = decision["decision_rule"]
    lines = [
        "## Evaluated models",
        "",
        f"| model | role | N | R | predicted loss | held-out loss, mean [per seed] | latency median [p10, p90] s | "
        f"speed-up | "
        f"avg accuracy* [{rule['confidence']:.0%} interval] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in decision["models"]:
        lat = m["latency"]
        band = f"[{lat['p10_s']:.3f}, {lat['p90_s']:.3f}]" if "p10_s" in lat else "(predicted)"
        low, high = m["avg_accuracy_interval"]
        lines.append(
            f"| {m['run_id']} | {m['role']} | {m['params']:,} | {m['aspect_ratio']:.1f} | {m['predicted_loss']:.5f} | "
            f"{m['mean_loss']:.4f} [{', '.join(f'{x:.4f}' for x in m['seed_losses'])}] | "
            f"{lat['median_s']:.3f} {band} | {m['speedup_vs_baseline']:.2f}x | "
            f"{m['avg_accuracy']:.4f} [{low:.4f}, {high:.4f}] |"
        )
    lines += ["", "\\* The mean over tasks of the per-task accuracies below (acc_norm, or acc where a task has none), "
              f"as lm-eval reports them; the interval is a {rule['bootstrap']}-draw bootstrap over the scored items "
              f"(resampled within each task, the same draws for every model)."]
    return lines + ["", *accuracy_lines(decision["models"], decision["tasks"])]


def caveat_lines(decision: dict) -> list[str]:
    """What limits the evidence: the stages' warnings, tasks no model beats chance on, items too long to score."""
    first = decision["models"][0]
    caveats = decision["warnings"] + [f"law: {w}" for w in decision["law_warnings"]]
    if chance := [t for t, level in decision["tasks"].items()
                  if all(below_chance(m["accuracy"][t], level) for m in decision["models"])]:
        caveats.append(f"no model scores above chance or the most common answer on {', '.join(chance)}: those "
                       "tasks do not tell these models apart")
    caveats += [f"{task}: {n:,} items drawn had an answer longer than the trained context ({first['eval_max_length']} "
                "tokens), which lm-eval cannot score, and were passed over for others"
                for task, n in first["eval_too_long"].items() if n]
    return ["", "Caveats:", "", *(f"- {w}" for w in caveats)] if caveats else []


def candidate_lines(decision: dict) -> list[str]:
    lines = ["## Candidates", "", "| shape | N | R | predicted loss | latency s | rank | law cannot separate it "
              "from | kept / reason |", "|---|---|---|---|---|---|---|---|"]
    for c in decision["candidates"]:
        lines.append(
            f"| {c['shape_id']} | {c['params']:,} | {c['aspect_ratio']:.1f} | {c['predicted_loss']:.5f} | "
            f"{c['latency']['median_s']:.3f} | {c.get('rank', '-')} | "
            f"{', '.join(c.get('indistinguishable_from', [])) or '-'} | {'kept' if c['kept'] else c['reason']} |"
        )
    return lines


def knob_lines(decision: dict) -> list[str]:
    if not decision["knobs"]:
        return []
    return ["", "## Architecture knobs", "",
                  "Each grid run with an ffn ratio or grouped-query knob against the default shape of its size and "
                  "depth at the same budget (the law sees these runs only through N, D and R):", "",
                  "| run | default | MLP:attention | kv heads | N | held-out loss | Δ loss | latency s | × default |",
            "|---|---|---|---|---|---|---|---|---|",
            *(f"| {k['run_id']} | {k['default']} | {k['mlp_attention_ratio']:.2f} (default "
              f"{k['default_mlp_attention_ratio']:.2f}) | {k['n_kv_heads']} (default {k['default_n_kv_heads']}) | "
              f"{k['params']:,} | {k['loss']:.4f} | {k['loss_change']:+.4f} | {k['latency_s']:.3f} | "
              f"{k['latency_ratio']:.2f} |" for k in decision["knobs"])]


def release_card(decision: dict, metrics: RunMetrics, md_path: Path, card_path: Path) -> str:
    """The released model's card: its training card (from its metrics.json) with its accuracies beside the
    baseline's and how it was chosen."""
    v, chosen, b = decision["verdict"], decision["chosen"], decision["budgets"]
    base = next(m for m in decision["models"] if m["role"] == "baseline")
    low, high = chosen["avg_accuracy_interval"]
    return card.render(metrics, {
        "Evaluation": [f"Average zero-shot accuracy {chosen['avg_accuracy']:.4f} [{low:.4f}, {high:.4f}] against the "
                       f"baseline's {base['avg_accuracy']:.4f}; Δ {v['accuracy']['delta']:+.4f} "
                       f"[{v['accuracy']['interval'][0]:+.4f}, {v['accuracy']['interval'][1]:+.4f}].", "",
                       *accuracy_lines([chosen, base], decision["tasks"])],
        "How it was chosen": [f"{v['headline']}.", "", f"Rule: {decision['decision_rule']['statement']}. Budgets: "
                              f"N_C = {b['params']:,} parameters, D_C = {b['tokens']:,} tokens, "
                              f"T_C = {b['latency_s']:.3f} s. "
                              f"{params_counted(decision)}.", "",
                              f"The weights are `{v['weights']}`; the whole report is "
                              f"[{md_path.name}]({os.path.relpath(md_path, card_path.parent)})."]})


def summary(decision: dict) -> dict:
    """The flat numbers worth comparing across experiments (`dvc metrics show`, `dvc exp show`): the verdict, in
    at most 11 columns so the table (with its path column) fits a screen; the regret and the rest stay in
    morph1b.json."""
    v, h = decision["verdict"], decision["hindsight"] or {}
    noise = v["noise"] or {}
    flat = {"verdict": v["kind"], "basis": v["basis"], "released": v["shape_id"], "delta_loss": v["delta_loss"],
            "delta_loss_upper": v["upper"], "margin": v["margin"], "sigma": noise.get("sd"),
            "sigma_df": noise.get("df"),
            "seeds": v["seeds"], "speedup": v["speedup"], "spearman": (h.get("spearman") or {}).get("rho")}
    return {k: x for k, x in flat.items() if x is not None}


def evaluated_dir(shape: dict, cfg) -> str:
    """The run directory lm-eval scored for a measured shape: its seed-0 run (a validation run or a slot)."""
    if shape["run_id"] not in cfg.evaluated_models:
        raise MorphError(f"{shape['run_id']}: measured at D_C but not scored by lm-eval; rerun the graph")
    return shape["run_id"]


def speedup_interval(chosen: dict, base: dict) -> list[float] | None:
    """The speed-up's range from the two shapes' timing intervals (best to next-best round)."""
    a, b = speed(chosen["latency"]), speed(base["latency"])
    if "latency_low_s" not in a or "latency_low_s" not in b:
        return None
    return [b["latency_low_s"] / a["latency_high_s"], b["latency_high_s"] / a["latency_low_s"]]


def run(args):
    cfg = experiment.load(args.params)
    selection = Selection.read(args.selection)
    if selection.law != cfg.select.law:
        raise MorphError(f"{args.selection}: selected with law {selection.law!r}, params say {cfg.select.law!r}")
    measured.check_selection(selection, args.selection)
    runs_dir, eval_dir = Path(args.runs_dir), Path(args.eval_dir)
    shapes = measured.shapes(cfg, selection, runs_dir)
    base = measured.baseline(cfg, runs_dir)
    noise = measured.noise(shapes, base, selection)
    margin = cfg.select.margin.absolute(base["mean_loss"])
    feasible = [m for m in shapes if m["feasible"]]
    if not feasible:
        raise MorphError(f"{args.selection}: no feasible candidate was trained at D_C; the selection is inconsistent")
    for m in feasible:
        m |= speed(m["candidate"]["latency"])
    predicted = cfg.target_seeds == 1 and cfg.select.validate == "none"
    top1 = next(c for c in selection.candidates if c.get("slot") == slot(1))
    base_speed = speed(selection.baseline["latency"])["latency_s"]
    verdict = (decide_predicted(top1, base_speed, margin) if predicted else
               decide(feasible, {"mean_loss": base["mean_loss"], "latency_s": base_speed}, noise, margin))
    release = verdict["shape"]
    stacks = {} if predicted else per_stack(
        [m | {"latency_by_backend": m["candidate"].get("latency_by_backend", {})} for m in shapes
         if cfg.select.within_params(m["candidate"])],
        {"mean_loss": base["mean_loss"], "latency_by_backend": selection.baseline.get("latency_by_backend", {})},
        noise, margin, cfg.select.latency_budget_for)
    # Every model lm-eval scored that the decision speaks of: the measured feasible shapes and the baseline.
    roles = [(evaluated_dir(m, cfg), m["candidate"], m) for m in feasible] + [
        (base["run_id"], selection.baseline, base)]
    models = []
    for name, cand, meas in roles:
        role = "baseline" if meas is base else "release" if cand["shape_id"] == release["shape_id"] else "candidate"
        entry = model_entry(role, runs_dir / name, Path(eval_json(name, eval_dir)), cand)
        models.append(entry | {"seed_losses": meas["losses"], "seed_runs": meas["runs"], "mean_loss": meas["mean_loss"],
                               "law_rank": cand.get("rank"), "slot": cand.get("slot")})
    for m in models:
        m["speedup_vs_baseline"] = base_speed / speed(m["latency"])["latency_s"]
    ev = cfg.evaluate
    per_item = {m["run_id"]: item_scores(read_json(eval_json(name, eval_dir)), Path(lm_eval_out(name, eval_dir)))
                for m, (name, _, _) in zip(models, roles)}
    draws = paired_draws(per_item, ev.bootstrap, cfg.seed)  # also checks that every model answered the same items
    first = roles[0][0]
    levels = task_levels(read_json(eval_json(first, eval_dir)), Path(lm_eval_out(first, eval_dir)))
    for m in models:
        m["avg_accuracy_interval"] = interval(draws[m["run_id"]], ev.confidence)
    chosen, chosen_dir = next((m, name) for m, (name, _, _) in zip(models, roles) if m["role"] == "release")
    base_model = models[-1]
    if chosen["latency"]["median_s"] > selection.budgets["latency_s"]:
        raise MorphError(f"chosen {chosen['run_id']} breaks the latency budget; the selection is inconsistent")
    hind = (hindsight.check(selection, {m["shape_id"]: {"run_id": m["run_id"], "loss": m["mean_loss"]} for m in shapes},
                            noise, cfg.select.validate, cfg.seed) if cfg.validation_runs else None)
    curves = {m["run_id"]: runs_dir / name / LOSS_CURVE for m, (name, _, _) in zip(models, roles)}
    inputs = [args.selection, args.runs, args.latency] + [p for name, _, _ in roles for p in (
        eval_json(name, eval_dir), lm_eval_out(name, eval_dir), runs_dir / name / LOSS_CURVE)]
    inputs += [runs_dir / rid / RUN_METRICS for meas in (*shapes, base) for rid in meas["runs"]]
    acc_delta = draws[chosen["run_id"]] - draws[base_model["run_id"]]
    decision = Decision(
        verdict=verdict_record(verdict, chosen, str(runs_dir / chosen_dir), base_model, noise, margin, cfg,
                               predicted) | {
            "model_card": args.card, "by_backend": stacks, "latency_backend": cfg.select.latency_metric,
            "disturbed_timings": [m["shape_id"] for m in models if m["latency"].get("disturbed")],
            "accuracy": {"delta": chosen["avg_accuracy"] - base_model["avg_accuracy"],
                         "interval": interval(acc_delta, ev.confidence),
                         "items_per_task": models[0]["eval_limit"],
                         "role": "descriptive: not part of the verdict; at this many items a task its interval is "
                                 "wide"}},
        budgets=selection.budgets,
        law=selection.law,
        params_count=selection.params_count,
        law_choice=selection.law_choice,
        chosen=chosen,
        decision_rule={"name": "predicted" if predicted else "measured", "statement": verdict["rule"],
                       "confidence": ev.confidence, "bootstrap": ev.bootstrap, "seed": cfg.seed},
        hindsight=hind,
        models=models,
        tasks=levels,  # each task's accuracy metric, chance and most common answer's rate
        noise=selection.noise,
        ranking=selection.ranking,
        r_effect=selection.r_effect,
        candidates=selection.candidates,
        knobs=knob_effects(cfg, Path(args.runs), Path(args.latency)),
        warnings=selection.warnings,
        law_warnings=selection.law_warnings,
        **provenance(inputs),
    )
    record = decision.to_json()  # morph1b.json as written: the page, the card and the summary render it
    figure_paths = plot(models, curves, Path(args.figures))
    figure_paths += [Path(figure(name, args.figures)) for name in (HINDSIGHT_FIGURE, PARETO_MEASURED)]
    released = decision.verdict["shape_id"]
    hindsight.plot(hind or {"trained": [], "spearman": {"rho": None}}, base_model, noise, figure_paths[-2], released)
    half = hindsight.mean_half_width(noise)
    plot_pareto(selection, figure_paths[-1], released=released,
                measured={m["shape_id"]: (m["mean_loss"], half)
                          for m in (*shapes, base | {"shape_id": selection.baseline["shape_id"]})})
    md_path = Path(args.markdown)
    text = markdown(record, figure_paths, md_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    card_path = Path(args.card)
    text = release_card(record, RunMetrics.read(runs_dir / chosen_dir / RUN_METRICS), md_path, card_path)
    with atomic_path(card_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_json(args.summary, summary(record))
    write_json(args.out, record)  # last, so a present morph1b.json means a complete report
    print(f"verdict: {decision.verdict['headline']}")
    return 0

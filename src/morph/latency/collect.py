"""Gather latency/<shape_id>.json into results/latency.csv, fit the latency model, draw Figure 3."""
from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from pathlib import Path

from morph.core import experiment
from morph.core.artifacts.latency import latency_json
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import atomic_path, provenance, read_json, write_json
from morph.core.shape import Shape
from morph.latency.cost_model import FEATURES, MODEL_SETTING, features, fit, leave_one_out

LOO_TARGET = 0.15
SHAPE_FIELDS = tuple(f.name for f in dataclasses.fields(Shape))
CSV_COLUMNS = (
    "shape_id", "device", "device_name", "dtype", "backend", "setting", "unit", "batch", "prompt_len", "new_tokens",
    "d_model", "n_layers", "params", "aspect_ratio", "weight_bytes", "kv_cache_bytes",
    "n", "median", "p10", "p90", "cv", "best", "next_best", "cpu_median", "cpu_share", "load_before_1m",
    "load_after_1m", "disturbed", "others_busy_cores", "load_action", "source",
)


def load_records(cfg: Experiment, latency_dir: str | Path) -> list[tuple[Path, dict]]:
    """The measurement of every latency shape in the experiment, checked against the shape it claims."""
    out = []
    for shape in cfg.latency_shapes:
        path = Path(latency_json(shape.shape_id, latency_dir))
        record = read_json(path)
        measured = {k: record.get("shape", {}).get(k) for k in SHAPE_FIELDS}
        expected = {k: getattr(shape, k) for k in SHAPE_FIELDS}
        if measured != expected:
            diff = {k: (measured[k], expected[k]) for k in SHAPE_FIELDS if measured[k] != expected[k]}
            raise MorphError(
                f"{path}: measured a different model than the experiment's {shape.shape_id} "
                f"(field: (measured, expected) {diff}); rerun `morph latency --shape {shape.shape_id}`"
            )
        _check_timings(path, record, shape.shape_id)
        out.append((path, record))
    return out


def _check_timings(path: Path, record: dict, shape_id: str) -> None:
    """Every setting's timings are numbers: a hand edit or a damaged file would surface as a KeyError or a
    ValueError deep in the fit."""
    redo = f"rerun it: morph latency --shape {shape_id} --out {path}"
    try:
        settings = [(b, s, v) for b, entry in record["backends"].items() for s, v in entry["settings"].items()]
    except (KeyError, AttributeError, TypeError):
        raise MorphError(f"{path}: lists no backends with settings, not a `morph latency` record; {redo}") from None
    for backend, setting, timing in settings:
        for key in ("median", "p10", "p90"):
            value = timing.get(key) if isinstance(timing, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MorphError(f"{path}: backends.{backend}.settings.{setting}.{key} is {value!r}, not a number "
                                 f"of seconds; {redo}")


def csv_rows(records: list[tuple[Path, dict]]) -> list[dict]:
    rows = []
    for path, r in records:
        s = r["shape"]
        # Records from before load was judged have none of it: their cells stay empty, not "quiet".
        judged = r.get("load", {})
        kept = judged["attempts"][judged["kept_attempt"]] if judged else {}
        for backend, b in r["backends"].items():
            for setting, v in b["settings"].items():
                rows.append({
                    "shape_id": r["shape_id"], "device": r["device"], "device_name": r["device_name"],
                    "dtype": r["dtype"], "backend": backend, "setting": setting, "unit": v["unit"],
                    "batch": v["batch"], "prompt_len": r["setting"]["prompt_len"],
                    "new_tokens": r["setting"]["new_tokens"],
                    "d_model": s["d_model"], "n_layers": s["n_layers"], "params": s["params"],
                    "aspect_ratio": s["aspect_ratio"], "weight_bytes": s["weight_bytes"],
                    "kv_cache_bytes": s["kv_cache_bytes"],
                    "n": v["n"], "median": v["median"], "p10": v["p10"], "p90": v["p90"], "cv": v["cv"],
                    "best": v.get("best"), "next_best": v.get("next_best"),
                    "cpu_median": v.get("cpu_median"), "cpu_share": v.get("cpu_share"),
                    "load_before_1m": r["load_average"]["before"][0], "load_after_1m": r["load_average"]["after"][0],
                    "disturbed": r.get("disturbed"), "others_busy_cores": kept.get("busy_cores"),
                    "load_action": judged.get("action"),
                    "source": str(path),
                })
    return rows


def _same(group: list[tuple[Path, dict]], key: str, where: str):
    values = {r["setting"][key] if key in ("prompt_len", "new_tokens") else r[key] for _, r in group}
    if len(values) > 1:
        raise MorphError(
            f"latency model {where}: the measurements disagree on {key} {sorted(map(str, values))} "
            f"({', '.join(str(p) for p, _ in group)}); remeasure them on one machine with one params file"
        )
    return values.pop()


def fit_models(records: list[tuple[Path, dict]]) -> list[dict]:
    """One fit per (device, backend) on the median of the paper's setting."""
    import numpy as np

    groups: dict[tuple[str, str], list[tuple[Path, dict]]] = defaultdict(list)
    for path, r in records:
        for backend in r["backends"]:
            groups[(r["device"], backend)].append((path, r))
    models = []
    for (device, backend), group in sorted(groups.items()):
        where = f"({device}, {backend})"
        prompt_len, new_tokens = _same(group, "prompt_len", where), _same(group, "new_tokens", where)
        bpv = _same(group, "bytes_per_value", where)
        ids = [r["shape_id"] for _, r in group]
        x = np.array([
            features(Shape.from_dict(r["shape"]), prompt_len + new_tokens, bpv)
            for _, r in group
        ])
        y = np.array([r["backends"][backend]["settings"][MODEL_SETTING]["median"] for _, r in group])
        c = fit(x, y)
        in_sample = np.abs(x @ c - y) / y
        entry = {
            "device": device, "device_name": _same(group, "device_name", where), "dtype": _same(group, "dtype", where),
            "backend": backend, "setting": MODEL_SETTING, "prompt_len": prompt_len, "new_tokens": new_tokens,
            "bytes_per_value": bpv, "coefficients": dict(zip(FEATURES, map(float, c))), "shapes": ids,
            "fit_rel_error": {"mean": float(in_sample.mean()), "max": float(in_sample.max())},
        }
        # With no more shapes than coefficients a held-out point is predicted by an underdetermined fit.
        if len(group) > len(FEATURES):
            loo = leave_one_out(x, y)
            entry["loo"] = {"mean_rel_error": float(np.mean(loo)), "max_rel_error": float(np.max(loo)),
                            "per_shape": dict(zip(ids, loo)), "target": LOO_TARGET,
                            "within_target": bool(np.max(loo) <= LOO_TARGET)}
        else:
            entry["loo"] = {"mean_rel_error": None, "max_rel_error": None, "per_shape": {},
                            "reason": f"{len(group)} shapes; leave-one-out needs more than {len(FEATURES)}"}
        models.append(entry)
    return models


def write_csv(path: str | Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def run(args):
    from morph.latency.figure import plot_latency_shape

    cfg = experiment.load(args.params)
    records = load_records(cfg, args.latency_dir)
    rows = csv_rows(records)
    models = fit_models(records)
    write_csv(args.out, rows)
    plot_latency_shape([r for r in rows if r["setting"] == MODEL_SETTING], args.figure)
    write_json(args.model_out, {
        "formula": "T = c0 + c1*n_layers + c2*weight_bytes + c3*kv_cache_bytes (seconds, NNLS on relative error)",
        "features": list(FEATURES),
        "models": models,
        "provenance": provenance([args.params] + [str(p) for p, _ in records]),
    })
    for m in models:
        loo = m["loo"]
        if loo["max_rel_error"] is None:
            err = loo["reason"]
        else:
            err = f"LOO mean {loo['mean_rel_error']:.1%}, max {loo['max_rel_error']:.1%}"
        print(f"latency model ({m['device']}, {m['backend']}) on {len(m['shapes'])} shapes: {err}")
    print(f"{len(rows)} rows -> {args.out}; model -> {args.model_out}; figure -> {args.figure}")
    return 0

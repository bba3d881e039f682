"""Time inference of one shape: a random-weight Llama, greedy generation of exactly new_tokens, per backend.

Each backend is warmed up, then latency.repeats rounds each time every backend's every setting back to back, so
drift and other work on the machine hit all alike. The cores other processes kept busy are read before and
during the rounds (latency/load.py); a disturbed timing is warned about, timed again or refused as
latency.on_disturbed says, and the record says which. Settings:
  full               batch 1, prompt_len -> new_tokens (the paper's setting)
  ttft               batch 1, prompt_len -> 1 token (when latency.ttft)
  decode_per_token   (full - ttft) / (new_tokens - 1), paired within a repetition
  full_b<B>          batch B, prompt_len -> new_tokens, for each B in latency.batch_sizes other than 1
  throughput_b<B>    B * new_tokens / full time, tokens/s
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from morph.core import experiment
from morph.core.backends import flash_head_dim_problem
from morph.core.decoder import build_model
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import library_versions, provenance, write_json
from morph.latency import load
from morph.latency.stats import BEST, summarize

DTYPES = ("float32", "bfloat16", "float16")


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device_dtype(lat: dict):
    """The torch device and dtype to time, or a MorphError saying why this machine cannot run them."""
    import torch

    device = lat.device
    if device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
        raise MorphError(
            f"latency.device: 'cuda' but torch sees no CUDA device (torch {torch.__version__}, built with {build}); "
            "set latency.device: cpu or run on a GPU machine"
        )
    name = lat.dtype
    if name == "auto":
        name = "bfloat16" if device == "cuda" else "float32"
    if name not in DTYPES:
        raise MorphError(f"latency.dtype: {name!r} is not one of {list(DTYPES)}")
    if device == "cpu" and name == "float16":
        raise MorphError(
            "latency.dtype: float16 on cpu is refused: CPUs have no native float16 matmul, PyTorch emulates it, "
            "so the timing would describe the emulation, not the model; use float32 (or auto)"
        )
    if device == "cpu" and name == "bfloat16" and not _cpu_has_native_bf16():
        raise MorphError(
            f"latency.dtype: bfloat16 on this cpu ({cpu_model_name()}) has no native support (no avx512_bf16/amx_bf16) "
            "and would be emulated; use float32 (or auto)"
        )
    if device == "cuda" and name == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise MorphError(
            f"latency.dtype: bfloat16 is not supported on {torch.cuda.get_device_name()}; use float16 or float32"
        )
    return torch.device(device), getattr(torch, name)


def timed_model(shape, cfg: Experiment, device, dtype):
    """Random weights, seeded: latency does not depend on their values, only on the shape. Made where and in the
    dtype they are timed: no host copy in float32 to initialise and move."""
    return build_model(shape, cfg.model.max_position_embeddings, None, cfg.seed, device=device, dtype=dtype).eval()


def attention_kernels(shape, device, dtype) -> dict | None:
    """Which of PyTorch's fused SDPA kernels take this shape's heads on this GPU (None on CPU, which has one)."""
    import torch

    if device.type != "cuda":
        return None
    q = torch.empty(1, shape.n_heads, 16, shape.head_dim, device=device, dtype=dtype)
    kv = torch.empty(1, shape.n_kv_heads, 16, shape.head_dim, device=device, dtype=dtype)
    cuda = torch.backends.cuda
    try:
        params = cuda.SDPAParams(q, kv, kv, None, 0.0, True, shape.n_kv_heads != shape.n_heads)
    except TypeError:  # torch before 2.5 has no grouped-query flag
        params = cuda.SDPAParams(q, kv, kv, None, 0.0, True)
    checks = {"flash": "can_use_flash_attention", "efficient": "can_use_efficient_attention",
              "cudnn": "can_use_cudnn_attention"}  # cudnn's check is newer than the others
    return {kernel: getattr(cuda, check)(params) for kernel, check in checks.items() if hasattr(cuda, check)}


def _settings(lat: dict) -> list[tuple[str, int, int]]:
    """(name, batch, new tokens) of every timed call in one repetition."""
    plan = [("full", 1, lat.new_tokens)]
    if lat.ttft:
        plan.append(("ttft", 1, 1))
    plan += [(f"full_b{b}", b, lat.new_tokens) for b in sorted(set(lat.batch_sizes) - {1})]
    return plan


def _timer(device):
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(call):
        sync()  # nothing queued from before may land inside the interval
        start, cpu_start = time.perf_counter(), time.process_time()
        out = call()
        sync()  # the clock is read only once the device has finished
        return time.perf_counter() - start, time.process_time() - cpu_start, out

    return timed


def _check_output(out, batch: int, prompt_len: int, new_tokens: int, backend: str) -> None:
    expected = (batch, prompt_len + new_tokens)
    if tuple(out.shape) != expected:
        raise MorphError(
            f"{backend} backend returned token ids of shape {tuple(out.shape)}, expected {expected} "
            f"(batch {batch}, {prompt_len} prompt + exactly {new_tokens} new tokens)"
        )


def _warm(backend, once, plan, lat) -> dict:
    """A compiling or capturing backend does so on its first calls per shape; those calls are never samples."""
    first_call = {}
    for i in range(max(lat.warmup, backend.warmup)):
        for name, batch, new in plan:
            seconds, _, _ = once(backend, batch, new)
            if i == 0:
                first_call[name] = seconds
    backend.check_ready()
    return first_call


def _rounds(backends: dict, once, plan, lat, desc: str, progress: bool) -> dict:
    """latency.repeats rounds, each timing every backend's every setting back to back, so that drift and other
    work on the machine hit all alike; the cores others kept busy in each round beside it."""
    from tqdm import tqdm

    samples = {b: {name: [] for name, _, _ in plan} for b in backends}
    cpu = {b: {name: [] for name, _, _ in plan} for b in backends}
    tokens, busy = {}, []
    for _ in tqdm(range(lat.repeats), desc=desc, unit="round", disable=not progress, file=sys.stderr):
        mark = load.Mark()
        for b, backend in backends.items():
            for name, batch, new in plan:
                seconds, cpu_seconds, out = once(backend, batch, new)
                samples[b][name].append(seconds)
                cpu[b][name].append(cpu_seconds)
                if name == "full" and b not in tokens:
                    tokens[b] = out[0, lat.prompt_len:].tolist()
        busy.append(load.others_busy_cores(mark))
    return {"samples": samples, "cpu": cpu, "tokens": tokens, "rounds_busy_cores": busy}


def _settings_summary(samples: dict, cpu_samples: dict, plan, lat) -> dict:
    settings = {}
    for name, batch, new in plan:
        cpu = summarize(cpu_samples[name])
        settings[name] = {"unit": "s", "batch": batch, "new_tokens": new, "samples": samples[name],
                          **summarize(samples[name]),
                          # Process CPU seconds beside the wall clock: with one thread, wall - cpu is time
                          # spent waiting for a core, i.e. what other work on the machine cost this sample.
                          "cpu_samples": cpu_samples[name], "cpu_median": cpu["median"], "cpu_cv": cpu["cv"],
                          "cpu_share": sum(cpu_samples[name]) / sum(samples[name])}
    n = lat.new_tokens
    if lat.ttft and n > 1:
        per_token = [(f - t) / (n - 1) for f, t in zip(samples["full"], samples["ttft"])]
        settings["decode_per_token"] = {"unit": "s/token", "batch": 1,
                                        "derived_from": "(full - ttft) / (new_tokens - 1)",
                                        "samples": per_token, **summarize(per_token)}
    for name, batch, _ in plan:
        if name == "full" or name.startswith("full_b"):
            rate = [batch * n / s for s in samples[name]]
            settings[f"throughput_b{batch}"] = {"unit": "tokens/s", "batch": batch,
                                                "derived_from": f"{batch} * new_tokens / {name}",
                                                "samples": rate, **summarize(rate, higher_is_better=True)}
    return settings


BEFORE_S = 0.5  # how long other processes' load is read before each attempt's rounds


def _refusal(lat, shape_id: str, busy: float, when: str, limit: float) -> MorphError:
    cpus = os.cpu_count()
    return MorphError(
        f"latency.on_disturbed is refuse, and other processes kept {busy:.2f} of this machine's {cpus} cores busy "
        f"{when} {shape_id} was timed, over latency.disturbed_at ({lat.disturbed_at} of the "
        f"{limit / lat.disturbed_at:g} cores the timing leaves free); time it on a quiet machine, or set "
        "latency.on_disturbed to retry or warn")


def _action(attempts: list[dict], kept: int, lat) -> str:
    if not attempts[kept]["disturbed"]:
        if len(attempts) == 1:
            return "none: not disturbed"
        return f"timed again after {len(attempts) - 1} disturbed attempt(s); kept attempt {kept + 1}, not disturbed"
    if lat.on_disturbed == "warn":
        return "warned: kept the disturbed timing (latency.on_disturbed: warn)"
    return f"timed {len(attempts)} times, every attempt disturbed; kept the least disturbed, attempt {kept + 1}"


def time_backends(backends: dict, prompts: dict, lat, device, shape_id: str, progress: bool) -> tuple[dict, dict]:
    """Every backend warmed up, then timed in interleaved rounds, again while other work disturbed the timing
    and latency.on_disturbed says retry: the per-backend results and what the machine's load was."""
    timed, plan = _timer(device), _settings(lat)

    def once(backend, batch, new):
        seconds, cpu, out = timed(lambda: backend.generate(prompts[batch], new))
        _check_output(out, batch, lat.prompt_len, new, backend.name)
        return seconds, cpu, out

    first_call = {name: _warm(backend, once, plan, lat) for name, backend in backends.items()}
    limit = lat.disturbed_at * max((os.cpu_count() or 1) - lat.threads, 1)
    attempts, results = [], []
    for _ in range(1 + (lat.retries if lat.on_disturbed == "retry" else 0)):
        before, load_before = load.busy_over(BEFORE_S), os.getloadavg()
        if lat.on_disturbed == "refuse" and before is not None and before > limit:
            raise _refusal(lat, shape_id, before, "just before", limit)
        mark = load.Mark()
        results.append(_rounds(backends, once, plan, lat, f"{shape_id} {'+'.join(backends)}", progress))
        during = load.others_busy_cores(mark)
        # A reading is None where /proc/stat is missing or the interval was shorter than one clock tick.
        busiest = max((b for b in (before, during) if b is not None), default=None)
        attempts.append({"before_busy_cores": before, "during_busy_cores": during,
                         "rounds_busy_cores": results[-1]["rounds_busy_cores"],
                         "load_average_before": list(load_before), "busy_cores": busiest,
                         "disturbed": busiest is not None and busiest > limit})
        if not attempts[-1]["disturbed"]:
            break
        if lat.on_disturbed == "refuse":
            raise _refusal(lat, shape_id, during, "while", limit)
    for backend in backends.values():
        backend.check_timed()

    kept = min(range(len(attempts)), key=lambda i: (attempts[i]["disturbed"], attempts[i]["busy_cores"] or 0))
    unknown = all(a["busy_cores"] is None for a in attempts)
    result = results[kept]
    out = {name: {"details": backend.details(), "first_call_s": first_call[name],
                  "generated_tokens": result["tokens"][name],
                  "settings": _settings_summary(result["samples"][name], result["cpu"][name], plan, lat)}
           for name, backend in backends.items()}
    verdict = {
        "disturbed": attempts[kept]["disturbed"],
        "action": "unknown: no /proc/stat to read other processes' load" if unknown else _action(attempts, kept, lat),
        "on_disturbed": lat.on_disturbed, "disturbed_at": lat.disturbed_at, "limit_busy_cores": limit,
        "cpu_count": os.cpu_count(), "threads": lat.threads,
        "method": f"cores other processes kept busy (/proc/stat less this process's CPU time), over {BEFORE_S} s "
                  "before and over the timed rounds",
        "kept_attempt": kept, "attempts": attempts,
    }
    if verdict["disturbed"]:
        print(f"morph latency: warning: {shape_id}: other processes kept {attempts[kept]['busy_cores']:.2f} cores "
              f"busy before or while it was timed (over {limit:g}); {verdict['action']}", file=sys.stderr)
    return out, verdict


def measure(cfg: Experiment, shape, inputs: list[str] = (), progress: bool = True) -> dict:
    """Time every backend in latency.backends on one shape; all checks come before any timing."""
    import torch

    from morph.latency import backends as latency_backends

    lat = cfg.latency
    device, dtype = resolve_device_dtype(lat)
    for name in lat.backends:
        latency_backends.check_available(name, device.type)

    torch.set_num_threads(lat.threads)
    kernels = attention_kernels(shape, device, dtype)
    if kernels is not None and not kernels["flash"]:
        why = flash_head_dim_problem(shape.head_dim) or f"head dim {shape.head_dim}"
        print(f"morph latency: warning: {shape.shape_id}: PyTorch's flash attention kernel does not take its heads "
              f"here ({why}); its timings are not comparable with those of shapes it takes (see model.max_head_dim)",
              file=sys.stderr)
    load_before = os.getloadavg()
    model = timed_model(shape, cfg, device, dtype)
    rng = torch.Generator().manual_seed(cfg.seed)
    batches = sorted({1, *lat.batch_sizes})
    prompts = {
        b: torch.randint(0, shape.vocab_size, (b, lat.prompt_len), generator=rng).to(device) for b in batches
    }
    with torch.inference_mode():
        made = {name: latency_backends.make(name, model, lat.prompt_len + lat.new_tokens, cfg.seed)
                for name in lat.backends}
        backends, verdict = time_backends(made, prompts, lat, device, shape.shape_id, progress)
    load_after = os.getloadavg()

    bytes_per_value = torch.tensor([], dtype=dtype).element_size()
    context = lat.prompt_len + lat.new_tokens
    return {
        "shape_id": shape.shape_id,
        "shape": shape.to_dict() | {
            "weight_bytes": shape.weight_bytes(bytes_per_value),
            "kv_cache_bytes": shape.kv_cache_bytes(context, 1, bytes_per_value),
        },
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name(),
        "dtype": str(dtype).removeprefix("torch."),
        "bytes_per_value": bytes_per_value,
        "threads": torch.get_num_threads(),
        "attention_kernels": kernels,
        "setting": {k: getattr(lat, k)
                    for k in ("prompt_len", "new_tokens", "warmup", "repeats", "ttft", "batch_sizes")}
        | {"rounds": "interleaved: each round times every backend's every setting back to back", "statistic": BEST}
        | {"seed": cfg.seed, "max_position_embeddings": cfg.model.max_position_embeddings},
        "backends": backends,
        "disturbed": verdict["disturbed"],
        "load": verdict,
        # The 1/5/15-minute load averages around the whole measurement, warm-up and model build included.
        "load_average": {"before": list(load_before), "after": list(load_after), "cpu_count": os.cpu_count()},
        "platform": platform.platform(),
        "versions": {"python": platform.python_version(), **library_versions("torch", "transformers", "vllm")},
        "provenance": provenance(list(inputs)),
    }


def run(args):
    cfg = experiment.load(args.params)
    try:
        shape = cfg.shape(args.shape)
    except KeyError as err:
        raise MorphError(f"--shape: {err.args[0]}") from None
    record = measure(cfg, shape, inputs=[args.params], progress=not args.no_progress)
    write_json(args.out, record)
    full = {name: b["settings"]["full"]["best"] for name, b in record["backends"].items()}
    quiet = "DISTURBED, " + record["load"]["action"] if record["disturbed"] else "not disturbed"
    print(f"{shape.shape_id}: best " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in full.items())
          + f" ({quiet}) -> {args.out}")
    return 0

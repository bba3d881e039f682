"""The records one stage writes and others read, each declared once: a training run's metrics.json (`RunMetrics`),
the selection (`Selection`, with its top-k `SelectedSlot`s) and the decision (`Decision`).

A record is a frozen dataclass whose fields are its file's top-level keys, in the order they are written, so
`to_json` gives the very mapping the writer wrote before (the same bytes through `io.write_json`). `from_json`
(and `read`, which parses the file first) refuses a missing key, an unknown key and a value of the wrong JSON
type, each by name, naming the file and the stage that rebuilds it, so a record written by another version of
morph or edited by hand stops its reader at once instead of inside a computation. Parts whose keys vary (a shape,
a provenance block, per-task scores, latency sub-records, the candidates) stay mappings: the top level is the
contract. A key listed in a record's OPTIONAL is written only when set, and absent means None.

Stages that read several records import this module, so it holds no file names (those are in `spec/artifacts`):
the reader passes the path, and the messages name it.
"""
from __future__ import annotations

import dataclasses
import shlex
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from morph.errors import MorphError
from morph.io import read_json

_JSON_TYPE = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object",
              list: "an array", type(None): "null"}


def _kinds(hint: Any) -> tuple:
    """The runtime types an annotation admits: `int | None` -> (int, NoneType); `list[X]` -> (list,)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(k for arg in typing.get_args(hint) for k in _kinds(arg))
    return (typing.get_origin(hint) or hint,)


def _admits(kind: type, value: Any) -> bool:
    if kind is Any:
        return True
    if kind in (int, float) and isinstance(value, bool):  # JSON's true is not a number
        return False
    if kind is float:
        return isinstance(value, (int, float))  # a whole number written as 3 is still a number
    return isinstance(value, kind)


def _item_record(hint: Any) -> type[Record] | None:
    """The record type of a `list[SomeRecord]` field's items, else None."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (None,)
        if isinstance(item, type) and issubclass(item, Record):
            return item
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _names(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys)


@dataclass(frozen=True, kw_only=True)
class Record:
    """A JSON record's top level: one field per key, in the order written."""
    WHAT: ClassVar[str] = "a record"  # what the file holds, for messages
    FIX: ClassVar[str] = "rebuild it with the stage that writes it"  # what to do, {path} filled in
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()  # keys written only when set (absent = None)

    def to_json(self) -> dict:
        """The record as its file holds it: every key in order, an unset OPTIONAL one left out."""
        return {f.name: _plain(value) for f in dataclasses.fields(self)
                if (value := getattr(self, f.name)) is not None or f.name not in self.OPTIONAL}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The record's keys, in the order written."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def fix(cls, path: str | Path) -> str:
        return cls.FIX.format(path=shlex.quote(str(path)))

    @classmethod
    def from_json(cls, data: Any, path: str | Path, fix: str | None = None) -> typing.Self:
        """The record `data` (a parsed JSON value) holds, read from `path`; refused by name where its keys or their
        types are not this record's."""
        return cls._build(data, str(path), "", fix or cls.fix(path))

    @classmethod
    def read(cls, path: str | Path, fix: str | None = None) -> typing.Self:
        """Parse `path` and read it as this record; `fix` (default: the record's FIX) says what to do on refusal."""
        fix = fix or cls.fix(path)
        return cls.from_json(read_json(path, fix), path, fix)

    @classmethod
    @cache
    def _hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def _build(cls, data: Any, path: str, where: str, fix: str) -> typing.Self:
        """`where`: the key path of a record nested in another ("top_k[0]"), "" at the top level."""
        what = f"{where}, {cls.WHAT}," if where else cls.WHAT
        if not isinstance(data, dict):
            raise MorphError(f"{path}: {where + ' ' if where else ''}holds {_JSON_TYPE.get(type(data), 'a value')}, "
                             f"not {cls.WHAT}; {fix}")
        fields, hints = cls.keys(), cls._hints()
        missing = [k for k in fields if k not in data and k not in cls.OPTIONAL]
        unknown = [k for k in data if k not in fields]
        if missing or unknown:
            said = " and ".join(part for part in (
                missing and f"lacks {'the key' if len(missing) == 1 else 'the keys'} {_names(missing)}",
                unknown and f"holds {'the unknown key' if len(unknown) == 1 else 'the unknown keys'} "
                            f"{_names(unknown)}") if part)
            raise MorphError(f"{path}: {what} {said} (written by another version of morph, or edited); {fix}")
        values = {}
        for name in fields:
            if name not in data:  # an OPTIONAL key the writer left out
                values[name] = None
                continue
            value, hint, key = data[name], hints[name], f"{where}.{name}" if where else name
            kinds = _kinds(hint)
            if not any(_admits(k, value) for k in kinds):
                expected = " or ".join(_JSON_TYPE.get(k, "a value") for k in kinds)
                raise MorphError(f"{path}: {key!r} is {value!r:.60}, where {cls.WHAT} holds {expected}; {fix}")
            if (item := _item_record(hint)) is not None:
                value = [item._build(v, path, f"{key}[{i}]", fix) for i, v in enumerate(value)]
            values[name] = value
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class RunMetrics(Record):
    """A training run's metrics.json (`morph train`'s record step): what was trained, its held-out loss, its speed
    and where its inputs came from."""
    WHAT: ClassVar[str] = "a training run's metrics"
    FIX: ClassVar[str] = "retrain the run with `morph train` (snakemake -j1 --force {path}), or restore the file"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"reused_from"})

    run_id: str
    slot: str | None  # the top-k slot it fills, None for a grid, baseline or validation run
    fingerprint: str  # of shape, budget, settings, seed, tokens and code: a slot reuses a twin with the same one
    shape: dict  # Shape.to_dict()
    params: int
    non_embedding_params: int
    multiplier: float | None  # tokens per parameter; None for a fixed budget
    tokens: int
    tokens_seen: int
    steps: int
    batch_size: int
    micro_batch_size: int
    world_size: int
    seq_len: int
    data_epochs: float
    val_loss: float
    val_tokens: int
    train_loss_ema: float
    resumed_from_step: int | None
    wall_s: float
    train_s: float
    train_cpu_s: float
    tokens_per_s: float
    throughput: dict  # tokens_per_s, steps, seconds and how they were timed
    train_flops_per_token: int
    attention_flops: str  # the convention the FLOPs count attention by
    peak: dict  # the peak FLOP/s MFU is against and its source
    mfu: float
    seed: int
    replicate: int
    replicate_of: str
    precision: str
    accelerator: str
    strategy: str
    threads: int
    config: dict  # the experiment's model and train sections
    versions: dict
    provenance: dict  # inputs, params_read, tokens_sha256, tokenizer
    model_sha256: str | None  # of the saved model folder; None only until the model is saved (train.run.save)
    reused_from: str | None = None  # a slot copied from a finished twin run: its directory


@dataclass(frozen=True, kw_only=True)
class SelectedSlot(Record):
    """One top-k entry of the selection: the slot and the shape `morph train --slot` trains in it."""
    WHAT: ClassVar[str] = "a top-k entry"

    slot: str
    run_id: str
    shape_id: str
    d_model: int
    n_layers: int
    ffn_ratio: float | None  # None: the default width rule
    n_kv_heads: int
    params: int
    predicted_loss: float
    indistinguishable_from: list[str]
    predicted_vs_baseline: dict


@dataclass(frozen=True, kw_only=True)
class Selection(Record):
    """results/selection.json (`morph select`): the budgets, the law's predictions, the ranking and the top-k."""
    WHAT: ClassVar[str] = "a selection"
    FIX: ClassVar[str] = "rebuild it with `morph select` (snakemake -j1 --force {path})"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"law_choice", "params_read"})

    by_backend: dict  # backend -> its T_C, ranking and speed-ups
    budgets: dict  # params, tokens, latency_s, latency_rule, tolerance, k and the serving budgets set
    law: str
    params_count: str
    law_choice: dict | None = None  # with select.law auto: the form the zoo chose and why
    tokens: int
    warnings: list[str]
    law_warnings: list[str]
    noise: dict  # loss_sd, replicated_runs, law_cv_rmse
    ranking: dict
    r_effect: dict
    top_k: list[SelectedSlot]
    candidates: list[dict]  # every candidate, kept or dropped with its reason
    baseline: dict
    inputs: dict  # provenance: path -> sha256
    params_read: dict | None = None  # provenance: the params the stage read, when run as a stage command

    def slot(self, name: str) -> SelectedSlot | None:
        return next((e for e in self.top_k if e.slot == name), None)


@dataclass(frozen=True, kw_only=True)
class Decision(Record):
    """results/morph1b.json (`morph report`): the verdict, the rule that made it and its evidence."""
    WHAT: ClassVar[str] = "a decision record"
    FIX: ClassVar[str] = "rebuild it with `morph report` (snakemake -j1 --force {path})"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"law_choice", "params_read"})

    verdict: dict
    budgets: dict
    law: str
    params_count: str
    law_choice: dict | None = None
    chosen: dict  # the released model's entry in `models`
    decision_rule: dict
    hindsight: dict | None  # None when no candidate beyond the top-k was trained
    models: list[dict]
    tasks: dict  # each task's accuracy metric, chance and most common answer's rate
    noise: dict
    ranking: dict
    r_effect: dict
    candidates: list[dict]
    knobs: list[dict]
    warnings: list[str]
    law_warnings: list[str]
    inputs: dict
    params_read: dict | None = None

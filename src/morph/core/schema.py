"""Validate a raw mapping into frozen dataclasses. Each key's type comes from its annotation and its
default and rule from `rule(...)` beside it, so a setting is declared once, where it is read.

jsonschema would give messages like "250 is not a multiple of 16" without the cross-field context
("not divisible by n_heads=16"); every error here starts with the key path it is about.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any

from morph.core.errors import MorphError


class ConfigError(MorphError):
    """An invalid experiment file. The message starts with the offending key path."""


@dataclass(frozen=True)
class Rule:
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None  # an exclusive minimum: budgets, where zero means nothing can run
    check: Callable[[Any], str | None] | None = None
    min_len: int = 0  # for lists
    each: Rule | None = None  # for list items


def rule(default: Any = MISSING, *, each: dict | None = None, **limits) -> Any:
    """A dataclass field with a default (lists become tuples) and the rule its value must meet."""
    if isinstance(default, list):
        default = tuple(default)
    meta = {"rule": Rule(each=Rule(**each) if each else None, **limits)}
    return dataclasses.field(default=default, metadata=meta)


def section(*, required: bool = False) -> Any:
    """A nested section; a missing optional one takes every default. (`build` always passes a
    value; the None default only lets sections follow keys that have defaults.)"""
    return dataclasses.field(default=None, metadata={"section": required})


# numpy and torch hold integers in 64 bits; a larger one (seed: 1e30) would overflow inside a stage.
INT_LIMIT = 2**63 - 1


def _type_name(kinds: tuple) -> str:
    return " or ".join(k.__name__ for k in kinds)


def _scalar(path: str, value: Any, kinds: tuple, nullable: bool, r: Rule) -> Any:
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{path}: must be set (got null)")
    # YAML reads 1e6 as a string and 3 as an int where a float is meant; accept both honestly.
    if float in kinds and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if int in kinds and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{path}: {value!r} is not a finite number; write a number (.nan and .inf are refused)")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        raise ConfigError(f"{path}: {value:.3g} does not fit in a 64-bit integer; use a smaller value")
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"{path}: expected {_type_name(kinds)}, got bool {value!r}")
    if not isinstance(value, kinds):
        raise ConfigError(f"{path}: expected {_type_name(kinds)}, got {type(value).__name__} {value!r}")
    if r.choices is not None and value not in r.choices:
        raise ConfigError(f"{path}: {value!r} is not one of {list(r.choices)}")
    if r.min is not None and value < r.min:
        raise ConfigError(f"{path}: {value!r} is below the minimum {r.min}")
    if r.above is not None and value <= r.above:
        raise ConfigError(f"{path}: {value!r} must be above {r.above:g}")
    if r.max is not None and value > r.max:
        raise ConfigError(f"{path}: {value!r} is above the maximum {r.max}")
    if r.check is not None and (problem := r.check(value)):
        raise ConfigError(f"{path}: {value!r} {problem}")
    return value


def _value(path: str, value: Any, hint: Any, r: Rule) -> Any:
    args = typing.get_args(hint)
    nullable = isinstance(hint, types.UnionType) and type(None) in args
    if isinstance(hint, types.UnionType):
        kinds = tuple(a for a in args if a is not type(None))
        if len(kinds) > 1:  # a scalar of several types, e.g. `int | str` for "all" or a count
            return _scalar(path, value, kinds, nullable, r)
        (hint,) = kinds
        args = typing.get_args(hint)
        if value is None:
            return None
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    if typing.get_origin(hint) is tuple:  # a list in YAML
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        if len(value) < r.min_len:
            raise ConfigError(f"{path}: needs at least {r.min_len} entries, got {len(value)}")
        return tuple(_value(f"{path}[{i}]", v, args[0], r.each or Rule()) for i, v in enumerate(value))
    return _scalar(path, value, (hint,), nullable, r)


def build(cls: type, raw: Any, path: str = "") -> Any:
    """An instance of the dataclass `cls` from a raw mapping, with defaults filled in, or ConfigError."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = path or "(top level)"
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"{where}{unknown[0]}: unknown key (allowed here: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in raw:
            if f.metadata.get("section"):
                raise ConfigError(f"{sub}: required section is missing")
            if "section" in f.metadata:
                values[name] = build(hints[name], {}, sub)
                continue
            if f.default is MISSING:
                raise ConfigError(f"{sub}: required key is missing")
            values[name] = f.default
            continue
        values[name] = _value(sub, raw[name], hints[name], f.metadata.get("rule", Rule()))
    return cls(**values)

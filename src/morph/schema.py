"""A small declarative validator: every error names the key path and the rule it breaks.

jsonschema would give messages like "250 is not a multiple of 16" without the
cross-field context ("not divisible by n_heads=16"), so the experiment's rules
are written here once, as plain data plus a few cross-field checks in config.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import MorphError


class ConfigError(MorphError):
    """An invalid experiment file. The message starts with the offending key path."""


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    nullable: bool = False
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    item: Any = None  # a Field or a dict-spec for list items
    check: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Section:
    spec: dict[str, Any]
    required: bool = False


@dataclass
class ListOf:
    item: Any
    default: list = field(default_factory=list)
    min_len: int = 0


def _type_name(kind) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _check_scalar(path: str, value: Any, f: Field) -> Any:
    if value is None:
        if f.nullable:
            return None
        raise ConfigError(f"{path}: must be set (got null)")
    kinds = f.kind if isinstance(f.kind, tuple) else (f.kind,)
    # YAML reads 1e6 as a string and 3 as an int where a float is meant; accept both honestly.
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value) if int not in kinds else value
    if float in kinds and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if int in kinds and isinstance(value, float) and value.is_integer() and float not in kinds:
        value = int(value)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"{path}: expected {_type_name(f.kind)}, got bool {value!r}")
    if not isinstance(value, kinds):
        raise ConfigError(f"{path}: expected {_type_name(f.kind)}, got {type(value).__name__} {value!r}")
    if f.choices is not None and value not in f.choices:
        raise ConfigError(f"{path}: {value!r} is not one of {list(f.choices)}")
    if f.min is not None and value < f.min:
        raise ConfigError(f"{path}: {value!r} is below the minimum {f.min}")
    if f.max is not None and value > f.max:
        raise ConfigError(f"{path}: {value!r} is above the maximum {f.max}")
    if f.check is not None:
        problem = f.check(value)
        if problem:
            raise ConfigError(f"{path}: {value!r} {problem}")
    return value


def validate(value: Any, spec: Any, path: str) -> Any:
    """Return a normalised copy of `value` with defaults filled in, or raise ConfigError."""
    if isinstance(spec, Section):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - set(spec.spec))
        if unknown:
            where = f"{path}." if path else ""
            raise ConfigError(
                f"{where}{unknown[0]}: unknown key (allowed here: {', '.join(sorted(spec.spec))})"
            )
        out = {}
        for key, sub in spec.spec.items():
            sub_path = f"{path}.{key}" if path else key
            if key not in value:
                if isinstance(sub, Field) and sub.required:
                    raise ConfigError(f"{sub_path}: required key is missing")
                if isinstance(sub, Section) and sub.required:
                    raise ConfigError(f"{sub_path}: required section is missing")
                if isinstance(sub, Field):
                    out[key] = sub.default
                    continue
                if isinstance(sub, ListOf):
                    out[key] = list(sub.default)
                    continue
            out[key] = validate(value.get(key), sub, sub_path)
        return out
    if isinstance(spec, ListOf):
        if value is None:
            value = list(spec.default)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        if len(value) < spec.min_len:
            raise ConfigError(f"{path}: needs at least {spec.min_len} entries, got {len(value)}")
        return [validate(v, spec.item, f"{path}[{i}]") for i, v in enumerate(value)]
    return _check_scalar(path, value, spec)

"""A record one stage writes and others read, declared once as a `Record` subclass in its producer's artifacts
module (core/artifacts): a training run's metrics.json (`train.RunMetrics`), the selection (`select.Selection`,
with its top-k `SelectedSlot`s) and the decision (`report.Decision`). There, an edit to one record's schema reruns
only the stages that read that record.

A record is a frozen dataclass whose fields are its file's top-level keys, in the order they are written, so
`to_json` gives the very mapping the writer wrote before (the same bytes through `io.write_json`). `from_json`
(and `read`, which parses the file first) refuses a missing key, an unknown key and a value of the wrong JSON
type, each by name, naming the file and the stage that rebuilds it, so a record written by another version of
morph or edited by hand stops its reader at once instead of inside a computation. Parts whose keys vary (a shape,
a provenance block, per-task scores, latency sub-records, the candidates) stay mappings: the top level is the
contract. A key listed in a record's OPTIONAL is written only when set, and absent means None.

The reader passes the path, and the messages name it.
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

from morph.core.errors import MorphError
from morph.core.io import read_json

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

"""A stage command's interface as one dataclass: each field is a flag, an input, an output or a value, with its
default and help. The CLI's parser and the stage table's command line are both built from it, so the flags a
command accepts and those its node passes cannot disagree, and a node's file flags are its inputs and outputs."""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field

IN = "in"  # a file or folder the stage reads: a dependency
OUT = "out"  # a file it writes: an output
OUT_FOLDER = "out-folder"  # a folder it writes whole: an output tracked as a folder
FOLDER = "folder"  # a folder it reads or writes in, whose files the node names itself
VALUE = "value"  # not a path


def flag(default=MISSING, *, role: str = VALUE, help: str = "", group: str | None = None):
    """One field: its default (none: the flag is required), what it is to the graph, its help, and the required
    mutually exclusive group it belongs to, if any."""
    return field(default=default, metadata={"role": role, "help": help, "group": group})


def option(f: dataclasses.Field) -> str:
    return "--" + f.name.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class Interface:
    """Subclassed once per stage command, with `flag` fields in the order its command line gives them."""

    @classmethod
    def add_arguments(cls, parser) -> None:
        groups = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            kwargs = {"dest": f.name, "help": meta["help"]}
            if isinstance(f.default, bool):
                kwargs["action"] = "store_true"
            elif f.default is MISSING:
                kwargs["required"] = meta["group"] is None
            else:
                kwargs["default"] = f.default
                if f.default is not None and "%(default)" not in meta["help"]:
                    kwargs["help"] = f"{meta['help']} (default: %(default)s)".lstrip()
            if meta["group"] is not None:
                if meta["group"] not in groups:
                    groups[meta["group"]] = parser.add_mutually_exclusive_group(required=True)
                groups[meta["group"]].add_argument(option(f), **kwargs)
            else:
                parser.add_argument(option(f), **kwargs)

    @classmethod
    def from_namespace(cls, args) -> Interface:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def argv(self) -> tuple[str, ...]:
        """The flags with their values, every one given (an unset or false one left out)."""
        words = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or value is False:
                continue
            words += [option(f)] if value is True else [option(f), str(value)]
        return tuple(words)

    def under(self, at) -> Interface:
        """The same flags with every path passed through `at` (an experiment's folder)."""
        return dataclasses.replace(self, **{f.name: at(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if f.metadata["role"] != VALUE and getattr(self, f.name) is not None})

    def paths(self, *roles: str) -> tuple[str, ...]:
        return tuple(str(getattr(self, f.name)) for f in dataclasses.fields(self)
                     if f.metadata["role"] in roles and getattr(self, f.name) is not None)

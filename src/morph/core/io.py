"""Atomic writes, hashing and provenance: the contract every stage's outputs keep."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from morph.core.errors import MorphError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: changing the umask is process-wide, so doing it per write would race with threads.
_UMASK = _read_umask()


@contextmanager
def _naming_the_path(path: Path) -> Iterator[None]:
    """An OS error while writing (a full disk, a read-only folder) names the file, not just errno."""
    try:
        yield
    except OSError as err:
        where = err.filename or path
        raise MorphError(f"{where}: {err.strerror or err} while writing {path}; free space or fix the folder's "
                         "permissions, then rerun (the previous output, if any, is untouched)") from err


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    A killed or failing writer leaves the old file (or nothing), never a half file that looks whole.
    """
    path = Path(path)
    if path.is_dir():
        raise MorphError(f"{path}: is a directory, where a file is to be written; pass a file path, or move the "
                         "directory away")
    with _naming_the_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result is an ordinary file
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling directory; it replaces `path` only if the block succeeds.

    A failing or killed writer leaves the old directory (or nothing) plus at most a hidden temp dir.
    """
    path = Path(path)
    with _naming_the_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; the result is an ordinary directory
        try:
            yield tmp
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


def _reject_non_finite(obj: Any, where: str = "") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise MorphError(f"refusing to write a non-finite number ({obj}) at {where or 'top level'}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _reject_non_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _reject_non_finite(v, f"{where}[{i}]")


def write_json(path: str | Path, obj: Any, allow_non_finite: bool = False) -> None:
    """Write JSON atomically. NaN and inf are refused unless the caller opts in explicitly."""
    if not allow_non_finite:
        _reject_non_finite(obj)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=allow_non_finite) + "\n",
                       encoding="utf-8")


def read_json(path: str | Path, fix: str = "rebuild it with the stage that writes it") -> Any:
    path = Path(path)
    if not path.exists():
        raise MorphError(f"{path}: missing input file (has its stage run?)")
    if not path.is_file():
        raise MorphError(f"{path}: is a directory, where a JSON file belongs; pass the file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)[:120]
        raise MorphError(f"{path}: corrupt JSON ({reason}); {fix}") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# Files the orchestrators leave in an output folder: not content, so a byte-identical folder that one tool built
# and another did not hashes the same.
BOOKKEEPING = (".snakemake_timestamp",)


def sha256_tree(path: str | Path) -> str:
    """Hash of a directory: every file's relative name and content, in sorted order (bookkeeping left out)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name not in BOOKKEEPING):
        h.update(str(f.relative_to(path)).encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


# The params keys the running stage reads, with their values: set by the CLI from the stage table for the
# command it runs, recorded by every provenance block so `morph lineage --check` can tell a record made under
# other params. Only that slice: a record must not change when a section its stage ignores does.
_PARAMS_READ: ContextVar[dict | None] = ContextVar("params_read", default=None)
PARAMS_READ = "params_read"  # the provenance key holding them


@contextmanager
def reading_params(values: dict | None) -> Iterator[None]:
    token = _PARAMS_READ.set(values)
    try:
        yield
    finally:
        _PARAMS_READ.reset(token)


def provenance(inputs: list[str | Path], extra: dict | None = None) -> dict:
    """The versions of what a stage read: path -> sha256 and the params it ran under, so lineage can be walked
    back and checked."""
    out = {"inputs": {str(p): sha256_tree(p) for p in inputs}}
    if (read := _PARAMS_READ.get()) is not None:
        out[PARAMS_READ] = read
    if extra:
        out.update(extra)
    return out


def library_versions(*names: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found

"""DCLM-Baseline shard format: zstd-compressed JSON lines, one document a line with a `text` field.

Read errors name the file and the line, so a bad shard can be found and replaced.
"""
from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import zstandard

from morph.core.errors import MorphError

# Fixed level, single-threaded: the same records always give the same bytes.
ZSTD_LEVEL = 10


def read_docs(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number from 1, record) for every line of a .jsonl.zst shard."""
    path = Path(path)
    decode = codecs.getincrementaldecoder("utf-8")()
    pending: list[str] = []  # the line read so far, joined once: a long line costs no quadratic copying
    line_no = 0
    try:
        for chunk in _decompressed(path):
            lines = decode.decode(chunk).split("\n")
            if len(lines) == 1:
                pending.append(lines[0])
                continue
            lines[0] = "".join([*pending, lines[0]])
            pending = [lines.pop()]
            for line in lines:
                line_no += 1
                yield line_no, _parse(path, line_no, line)
        last = "".join([*pending, decode.decode(b"", final=True)])
    except zstandard.ZstdError as err:
        raise MorphError(f"{path}: not a readable zstd shard ({err}); re-download or remove it") from None
    except UnicodeDecodeError as err:
        raise MorphError(f"{path}: not UTF-8 text after decompression ({err})") from None
    except OSError as err:
        raise MorphError(f"{path}: cannot read ({err})") from None
    if last.strip():
        yield line_no + 1, _parse(path, line_no + 1, last)


def _decompressed(path: Path, block: int = 1 << 20) -> Iterator[bytes]:
    """Decompressed bytes of every frame; a truncated file is an error, not a short read."""
    dctx = zstandard.ZstdDecompressor()
    frame, seen_any = None, False
    with open(path, "rb") as raw:
        while data := raw.read(block):
            seen_any = True
            while data:
                if frame is None or frame.eof:
                    frame = dctx.decompressobj()
                yield frame.decompress(data)
                data = frame.unused_data if frame.eof else b""
    if not seen_any:
        raise MorphError(f"{path}: empty file, not a zstd shard; re-download or remove it")
    if not frame.eof:
        raise MorphError(f"{path}: truncated zstd shard (the last frame is incomplete); re-download it")


def _parse(path: Path, line_no: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise MorphError(f"{path}:{line_no}: invalid JSON ({err.msg}); fix or remove the line") from None
    except RecursionError:
        raise MorphError(f"{path}:{line_no}: JSON nested too deeply to read; fix or remove the line") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise MorphError(f"{path}:{line_no}: no string `text` field (a DCLM line is a JSON object with `text`)")
    # A \ud800 escape decodes to a lone surrogate, which is no character: no encoder can write or encode it.
    if "\\u" in line:
        try:
            record["text"].encode("utf-8")
        except UnicodeEncodeError as err:
            raise MorphError(f"{path}:{line_no}: `text` holds a lone surrogate ({record['text'][err.start]!r} at "
                             f"character {err.start}), which is not text; fix or remove the line") from None
    return record


class DocWriter:
    """Append records to a .jsonl.zst shard one at a time, so no caller holds a shard's documents
    (the caller makes the file atomic)."""

    def __init__(self, path: str | Path):
        self._raw = open(path, "wb")  # noqa: SIM115 - held open across write() calls, closed by close()
        self._out = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0).stream_writer(self._raw, closefd=False)

    def write(self, record: dict) -> None:
        self._out.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        self._out.close()
        self._raw.close()


def write_docs(path: str | Path, records: Iterable[dict]) -> None:
    """Write records as a .jsonl.zst shard (the caller makes it atomic)."""
    writer = DocWriter(path)
    try:
        for record in records:
            writer.write(record)
    finally:
        writer.close()

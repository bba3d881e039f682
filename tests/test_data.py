"""The sample and tokenize stages on the shipped fixture and on small hand-made shards."""
from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CI_PARAMS, ROOT
from morph import cli
from morph.core.artifacts.data import (
    MANIFEST,
    META,
    TOKENIZER,
    TOKENIZER_DIR,
    TOKENIZER_JSON,
    TOKENIZER_SUMMARY,
    TOKENS,
    sample_shard,
    token_shard,
    token_shard_summary,
)
from morph.core.io import sha256_file
from morph.data import encode, sample
from morph.data.shards import read_docs, write_docs

FIXTURE = sorted((ROOT / "data/raw/fixture").glob("shard_*.jsonl.zst"))
# A grid small enough that a few fixture documents cover it.
TINY = {
    "grid.multipliers": [1],
    "grid.sizes": [{"params": 20000, "depths": [1]}],
    "grid.replicates": [],
    "select.tokens": 2000,
    "data.train_tokens": 30000,
    "data.val_tokens": 1000,
}


def fixture_docs(n: int, start: int = 0) -> list[dict]:
    docs = [r for _, r in read_docs(FIXTURE[-1])]
    return docs[start:start + n]


def shard(path: Path, records) -> Path:
    write_docs(path, records)
    return path


def run_sample(params, out) -> int:
    return cli.main(["sample", "--params", str(params), "--out", str(out)])


def run_tokenize(params, sample_dir, out) -> int:
    return cli.main(["tokenize", "--params", str(params), "--sample", str(sample_dir), "--out", str(out)])


def same_but_paths(ours: Path, theirs: Path) -> bool:
    """Two JSON outputs equal but for where their recorded inputs lay: the same hashes, under other paths."""
    a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
    recorded = [sorted(d.pop("inputs", {}).values()) for d in (a, b)]
    return a == b and recorded[0] == recorded[1]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def read_split(sample_dir: Path, split: str) -> list[dict]:
    shards = json.loads((sample_dir / MANIFEST).read_text())["splits"][split]["shards"]
    return [r for s in shards for _, r in read_docs(sample_dir / s["file"])]


def split_tokens(tokens_dir: Path, split: str) -> np.ndarray:
    meta = json.loads((tokens_dir / META).read_text())
    shards = meta["splits"][split]["shards"]
    return np.concatenate([np.fromfile(tokens_dir / s["file"], dtype=meta["dtype"]) for s in shards])


# --- the CI experiment on the fixture --------------------------------------------------------------

def test_fixture_is_dclm_format():
    assert len(FIXTURE) == 4
    docs = [r for f in FIXTURE for _, r in read_docs(f)]
    assert len(docs) == 1768
    assert all(isinstance(d["text"], str) and d["id"] and d["license"] for d in docs)


def test_manifest_counts_and_hashes(ci_data, ci_cfg):
    manifest = json.loads((ci_data / "sample" / MANIFEST).read_text())
    assert manifest["seed"] == ci_cfg.seed and manifest["repeated"] is False
    assert set(manifest["source"]["inputs"]) == {str(f.relative_to(ROOT)) for f in FIXTURE}
    assert all(sha256_file(ROOT / f) == h for f, h in manifest["source"]["inputs"].items())
    for split in ("train", "val"):
        entry = manifest["splits"][split]
        for shard in entry["shards"]:
            docs = [r for _, r in read_docs(ci_data / "sample" / shard["file"])]
            assert shard["sha256"] == sha256_file(ci_data / "sample" / shard["file"])
            assert shard["docs"] == len(docs) and shard["chars"] == sum(len(d["text"]) for d in docs)
        assert entry["docs"] == sum(s["docs"] for s in entry["shards"])
        assert entry["chars"] == sum(s["chars"] for s in entry["shards"]) >= manifest["targets"][f"{split}_chars"]
    assert manifest["targets"]["train_chars"] == 1_000_000 * 3.0 * 1.2


def test_shards_are_bounded_and_fixed_by_the_params(ci_data, ci_cfg):
    """configs/ci.yaml: 3.6 M training characters at data.shard_mb 1 are 4 shards of about equal text."""
    manifest = json.loads((ci_data / "sample" / MANIFEST).read_text())
    files = [s["file"] for split in ("train", "val") for s in manifest["splits"][split]["shards"]]
    assert files == [Path(sample_shard(name)).name for name in ci_cfg.sample_shards]
    assert ci_cfg.sample_shards == ("train-00000", "train-00001", "train-00002", "train-00003", "val-00000")
    longest = max(len(d["text"]) for d in read_split(ci_data / "sample", "train"))
    for shard in manifest["splits"]["train"]["shards"]:
        assert abs(shard["chars"] - 900_000) <= longest
    assert sorted(p.name for p in (ci_data / "sample").iterdir()) == sorted(files + [MANIFEST])


def test_shards_keep_their_count_when_a_document_is_longer_than_a_shard(tmp_path):
    from morph.data.sample import SplitShards

    sink = SplitShards(tmp_path, [f"train-0000{i}" for i in range(4)], target_chars=400)
    for n in (50, 250, 30, 70):  # the 250-character document carries the split past two shards' starts
        sink.add({"text": "x" * n, "id": str(n), "origin": "test"})
    shards = sink.close()
    assert [(s["docs"], s["chars"]) for s in shards] == [(2, 300), (0, 0), (0, 0), (2, 100)]
    assert [len(list(read_docs(tmp_path / s["file"]))) for s in shards] == [2, 0, 0, 2]


def test_no_document_in_both_splits(ci_data):
    train = {d["origin"] for d in read_split(ci_data / "sample", "train")}
    val = {d["origin"] for d in read_split(ci_data / "sample", "val")}
    assert train and val and not train & val


def test_same_seed_same_tokens(ci_data, tmp_path):
    with contextlib.chdir(ROOT):
        assert run_sample(CI_PARAMS, tmp_path / "sample") == 0
        assert run_tokenize(CI_PARAMS, tmp_path / "sample", tmp_path / "tokens") == 0
    names = [f"sample/{p.name}" for p in (ci_data / "sample").iterdir()]
    names += [f"tokens/{p.name}" for p in (ci_data / "tokens").iterdir() if p.is_file()]
    assert len(names) == (5 + 1) + (2 * 5 + 1)  # shards and manifest; token shards, summaries and meta.json
    for name in names:
        if name == f"tokens/{META}":  # its provenance names the directories read, and the summaries' hashes
            continue
        if name.endswith(".json") and name.startswith("tokens/"):  # a summary: it names the files it read
            assert same_but_paths(tmp_path / name, ci_data / name), name
        else:
            assert sha256_file(tmp_path / name) == sha256_file(ci_data / name), name
    ours, theirs = (json.loads((d / "tokens" / META).read_text()) for d in (tmp_path, ci_data))
    assert ours["splits"] == theirs["splits"]
    assert (tmp_path / "tokens" / TOKENIZER_DIR / TOKENIZER_JSON).read_bytes() == \
        (ci_data / "tokens" / TOKENIZER_DIR / TOKENIZER_JSON).read_bytes()


def test_different_seed_different_sample(ci_data, make_params, tmp_path):
    with contextlib.chdir(ROOT):
        assert run_sample(make_params({"seed": 8}), tmp_path / "s") == 0
    ours = [d["origin"] for d in read_split(tmp_path / "s", "train")]
    theirs = [d["origin"] for d in read_split(ci_data / "sample", "train")]
    assert ours != theirs and len(set(ours) & set(theirs)) < len(ours)


def test_meta_and_token_files(ci_data, ci_tokens, ci_cfg):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ci_tokens / TOKENIZER_DIR / TOKENIZER_JSON))
    tok.encode_special_tokens = True  # a literal "<|endoftext|>" inside a document is text
    meta = json.loads((ci_tokens / META).read_text())
    assert meta["tokenizer"] == "bpe:512"
    assert meta["vocab_size"] == ci_cfg.vocab_size == meta["tokenizer_vocab_size"] == 512
    assert meta["dtype"] == "uint16"
    for split, key in (("train", "train_tokens"), ("val", "val_tokens")):
        entry = meta["splits"][split]
        for shard in entry["shards"]:
            tokens = np.memmap(ci_tokens / shard["file"], dtype=np.uint16, mode="r")
            assert len(tokens) == shard["tokens"] and int(tokens.max()) < 512
            assert shard["sha256"] == sha256_file(ci_tokens / shard["file"])
            # The library's own encoding of the sample shard's documents, an end-of-text after each.
            docs = [r["text"] for _, r in read_docs(sample_shard(Path(shard["file"]).stem, ci_data / "sample"))]
            ids = [e.ids + [meta["eot_id"]] for e in tok.encode_batch(docs, add_special_tokens=False)]
            assert docs and np.array_equal(tokens, np.concatenate(ids))
        assert entry["tokens"] == sum(s["tokens"] for s in entry["shards"]) >= getattr(ci_cfg.data, key)
    assert any(p.endswith(MANIFEST) for p in meta["inputs"])


def test_eot_after_every_document(ci_data):
    meta = json.loads((ci_data / "tokens" / META).read_text())
    eot = meta["eot_id"]
    for split in ("train", "val"):
        tokens = split_tokens(ci_data / "tokens", split)
        docs = read_split(ci_data / "sample", split)
        assert int((tokens == eot).sum()) == len(docs) == meta["splits"][split]["docs"]
        assert tokens[-1] == eot
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ci_data / "tokens" / TOKENIZER_DIR / TOKENIZER_JSON))
    tokens = split_tokens(ci_data / "tokens", "val")
    first = int(np.flatnonzero(tokens == eot)[0])
    assert tok.decode(tokens[:first].tolist()) == docs[0]["text"]


def test_tokenizer_loads_with_transformers(ci_tokens):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ci_tokens / TOKENIZER_DIR)
    meta = json.loads((ci_tokens / META).read_text())
    assert len(tok) == 512
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"
    assert tok.eos_token_id == meta["eot_id"]
    text = "The quick brown fox: def f(x):\n    return x ** 2  # ünïcode"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text and meta["eot_id"] not in ids


def test_the_graphs_scatter_and_gather_equal_one_process(ci_data, ci_cfg, tmp_path):
    """The commands the graph runs (tokenizer, one tokenize-shard per shard, tokenize-gather) write what
    `morph tokenize` writes."""
    sample, out, theirs = ci_data / "sample", tmp_path / TOKENS, ci_data / "tokens"
    with contextlib.chdir(ROOT):
        assert cli.main(["tokenizer", "--params", str(CI_PARAMS), "--sample", str(sample),
                         "--out", str(tmp_path / TOKENIZER), "--summary", str(tmp_path / TOKENIZER_SUMMARY)]) == 0
        for name in ci_cfg.sample_shards:
            assert cli.main(["tokenize-shard", "--params", str(CI_PARAMS), "--tokenizer", str(tmp_path / TOKENIZER),
                             "--shard", sample_shard(name, sample), "--out", token_shard(name, out),
                             "--summary", token_shard_summary(name, out)]) == 0
        assert cli.main(["tokenize-gather", "--params", str(CI_PARAMS), "--sample", str(sample),
                         "--tokens", str(out)]) == 0
    for name in ci_cfg.sample_shards:
        assert Path(token_shard(name, out)).read_bytes() == Path(token_shard(name, theirs)).read_bytes()
        assert same_but_paths(Path(token_shard_summary(name, out)), Path(token_shard_summary(name, theirs)))
    ours, theirs = (json.loads((d / META).read_text()) for d in (out, theirs))
    assert ours["splits"] == theirs["splits"]


def test_gather_names_a_truncated_shard_and_how_to_rebuild_it(ci_data, tmp_path, capsys):
    import shutil

    tokens = tmp_path / "tokens"
    shutil.copytree(ci_data / "tokens", tokens)
    (tokens / META).unlink()
    damaged = Path(token_shard("train-00001", tokens))
    damaged.write_bytes(damaged.read_bytes()[:1000])
    with contextlib.chdir(ROOT):
        assert cli.main(["tokenize-gather", "--params", str(CI_PARAMS), "--sample", str(ci_data / "sample"),
                         "--tokens", str(tokens)]) == 2
    err = capsys.readouterr().err
    assert f"{damaged}: holds 500 tokens where" in err
    assert f"snakemake -j1 --force {token_shard('train-00001')} --configfile {CI_PARAMS}" in err
    assert not (tokens / META).exists()


def test_tokenizer_learns_from_a_bounded_seeded_subsample(ci_data, make_params):
    from morph.core import experiment
    from morph.data import tokenizer
    from morph.data.manifest import read_manifest

    def draw(overrides):
        cfg = experiment.load(make_params(overrides))
        return tokenizer.subsample(cfg, ci_data / "sample", read_manifest(cfg, ci_data / "sample"))

    whole = draw({})  # 3.6 M characters is under the default bound: the whole split, in shard order
    assert whole == [d["text"] for d in read_split(ci_data / "sample", "train")]
    part = draw({"tokenizer.train_mb": 0.9})
    assert part == draw({"tokenizer.train_mb": 0.9}) and set(part) < set(whole)
    assert 0.6e6 < sum(map(len, part)) < 1.2e6


# --- exact fast encoding ---------------------------------------------------------------------------

def test_whitespace_class_is_unicode_white_space():
    import regex

    everything = "".join(map(chr, range(0x110000)))
    ours = "".join(re.findall(f"[{encode.WHITESPACE}]", everything))
    assert ours == "".join(regex.findall(r"\s", everything))


def test_piece_cache_matches_the_tokenizer(ci_tokens):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ci_tokens / TOKENIZER_DIR / TOKENIZER_JSON))
    tok.encode_special_tokens = True
    assert encode.word_cache_applies(tok)
    tricky = ["", "   ", "a  b\t\tc \n\n d", "it's we'll they'RE", "x\x1c.\x1d y\u2003z\u00a0w\u3000v",
              "<|endoftext|> inside", "naïve café 日本語 🙂 123,456.78", " leading", "trailing  ", "\r\n\r\n"]
    texts = tricky + [d["text"] for d in fixture_docs(60)]
    fast = encode.WordCacheEncoder(tok).encode(texts, 0, np.uint16)
    slow = encode.BatchEncoder(tok).encode(texts, 0, np.uint16)
    assert np.array_equal(fast, slow)
    assert int((fast == 0).sum()) == len(texts)  # the literal "<|endoftext|>" is text, not a boundary


# --- bad input: clear message, exit 2, nothing half-written ----------------------------------------

def test_glob_matching_nothing(make_params, tmp_path, capsys):
    params = make_params({"data.source": "local", "data.paths": [str(tmp_path / "none/*.jsonl.zst")]})
    assert run_sample(params, tmp_path / "out") == 2
    assert f"data.paths: '{tmp_path}/none/*.jsonl.zst' matches no file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("damage,message", [
    (lambda b: b"not zstd at all" * 10, "not a readable zstd shard"),
    (lambda b: b[: len(b) // 2], "truncated zstd shard"),
    (lambda b: b"", "empty file"),
])
def test_corrupt_shard_is_named(make_params, tmp_path, capsys, damage, message):
    good = shard(tmp_path / "shard_0.jsonl.zst", fixture_docs(20))
    bad = tmp_path / "shard_1.jsonl.zst"
    bad.write_bytes(damage(shard(tmp_path / "x.zst", fixture_docs(20, 20)).read_bytes()))
    params = make_params({**TINY, "data.source": "local", "data.paths": [str(good), str(bad)]})
    assert run_sample(params, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{bad}: {message}" in err
    assert not (tmp_path / "out").exists()


def test_a_shard_with_no_documents_is_named_in_a_warning(make_params, tmp_path, capsys):
    good = shard(tmp_path / "shard_0.jsonl.zst", fixture_docs(40))
    empty = shard(tmp_path / "shard_1.jsonl.zst", [])
    params = make_params({**TINY, "data.source": "local", "data.paths": [str(good), str(empty)]})
    assert run_sample(params, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert f"warning: {empty} holds no documents" in err and str(good) not in err


@pytest.mark.parametrize("line,message", [
    ({"url": "http://x", "content": "no text field"}, "no string `text` field"),
    ({"text": 42}, "no string `text` field"),
    ("{not json", "invalid JSON"),
])
def test_bad_line_names_file_and_line(make_params, tmp_path, capsys, line, message):
    path = tmp_path / "shard.jsonl.zst"
    docs = [json.dumps(d) for d in fixture_docs(2)] + [line if isinstance(line, str) else json.dumps(line)]
    import zstandard

    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(docs) + "\n").encode()))
    params = make_params({**TINY, "data.source": "local", "data.paths": [str(path)]})
    assert run_sample(params, tmp_path / "out") == 2
    assert f"{path}:3: {message}" in capsys.readouterr().err


def test_source_too_small_then_explicit_repeat(make_params, tmp_path, capsys):
    src = shard(tmp_path / "small.jsonl.zst", fixture_docs(8))
    chars = sum(len(d["text"]) for d in fixture_docs(8))
    overrides = {**TINY, "data.source": "local", "data.paths": [str(src)], "data.train_tokens": 40000}
    assert chars < 40000 * 3.6, "the test needs a source smaller than the target"
    assert run_sample(make_params(overrides), tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"the source holds {chars:,} characters in 8 documents" in err
    assert "train 144,000 + val 3,600 characters" in err and "data.allow_repeat: true" in err
    assert not (tmp_path / "out").exists()

    assert run_sample(make_params({**overrides, "data.allow_repeat": True}), tmp_path / "out") == 0
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["repeated"] is True and manifest["train_passes"] >= 2
    train = manifest["splits"]["train"]
    assert train["docs"] > train["unique_docs"] and train["chars"] >= 144_000
    val = {d["origin"] for d in read_split(tmp_path / "out", "val")}
    assert val.isdisjoint(d["origin"] for d in read_split(tmp_path / "out", "train"))


def test_hub_offline_fails_fast(make_params, tmp_path, capsys, monkeypatch):
    params = make_params({"data.source": "hub", "data.hub_timeout_s": 2})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    assert run_sample(params, tmp_path / "out") == 2
    assert time.monotonic() - start < 5
    assert "'hub' needs the network but HF_HUB_OFFLINE is set" in capsys.readouterr().err


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "http://10.255.255.1:443", "https://no-such-host.invalid"])
def test_hub_without_network_fails_within_timeout(make_params, tmp_path, capsys, monkeypatch, endpoint):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    params = make_params({"data.source": "hub", "data.hub_timeout_s": 2})
    start = time.monotonic()
    assert run_sample(params, tmp_path / "out") == 2
    assert time.monotonic() - start < 6
    # Refused, unroutable or unresolvable: either the probe or the first hub request says so.
    assert re.search(r"data\.(source: 'hub' cannot reach|hub_id: cannot open)", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_failure_leaves_old_output_and_no_temp(make_params, tmp_path, monkeypatch):
    src = shard(tmp_path / "src.jsonl.zst", fixture_docs(40))
    params = make_params({**TINY, "data.source": "local", "data.paths": [str(src)]})
    out = tmp_path / "out"
    assert run_sample(params, out) == 0
    before = {p.name: sha256_file(p) for p in out.iterdir()}

    def explode(self, record):  # dies half-way through writing the first shard
        raise KeyboardInterrupt

    monkeypatch.setattr(sample.DocWriter, "write", explode)
    with pytest.raises(KeyboardInterrupt):
        run_sample(make_params({**TINY, "seed": 99, "data.source": "local", "data.paths": [str(src)]}), out)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_tokenize_refuses_a_sample_for_another_experiment(ci_data, make_params, tmp_path, capsys):
    assert run_tokenize(make_params({"seed": 8}), ci_data / "sample", tmp_path / "t") == 2
    assert "drawn for {'seed': 7" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_tokenize_too_few_tokens_says_what_to_raise(make_params, tmp_path, capsys):
    src = shard(tmp_path / "src.jsonl.zst", fixture_docs(40))
    # 1 character per token is far too few for any BPE: the sample comes out short of tokens.
    params = make_params({**TINY, "data.source": "local", "data.paths": [str(src)],
                          "data.chars_per_token": 1.0, "data.margin": 1.0})
    assert run_sample(params, tmp_path / "s") == 0
    assert run_tokenize(params, tmp_path / "s", tmp_path / "t") == 2
    err = capsys.readouterr().err
    assert "below data.train_tokens 30,000" in err and "raise data.margin or data.chars_per_token" in err
    assert not (tmp_path / "t" / META).exists() and leftovers(tmp_path / "t") == []


def test_gpt_neox_tokenizer_from_the_wheel(make_params, tmp_path):
    src = shard(tmp_path / "src.jsonl.zst", fixture_docs(40))
    params = make_params({**TINY, "data.source": "local", "data.paths": [str(src)], "tokenizer.name": "gpt-neox-20b",
                          "grid.sizes": [{"params": 3_300_000, "depths": [1]}], "select.tokens": 1000,
                          "select.params": 3_300_000, "select.depths": [1, 2],
                          "data.train_tokens": 40000, "data.val_tokens": 1000, "grid.multipliers": [0.01],
                          "data.chars_per_token": 4.5})  # NeoX packs ~3.8 characters a token here
    assert run_sample(params, tmp_path / "s") == 0
    assert run_tokenize(params, tmp_path / "s", tmp_path / "t") == 0
    meta = json.loads((tmp_path / "t" / META).read_text())
    assert (meta["vocab_size"], meta["tokenizer_vocab_size"], meta["eot_id"], meta["dtype"]) == \
        (50432, 50280, 0, "uint16")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "t" / TOKENIZER_DIR)
    assert tok("Hello world")["input_ids"] == [12092, 1533]
    tokens = split_tokens(tmp_path / "t", "val")
    assert int((tokens == 0).sum()) == meta["splits"]["val"]["docs"]


def test_a_long_document_encodes_in_parts_to_the_same_ids(ci_tokens, monkeypatch):
    """Cut only before a whitespace run that follows text, a document's parts encode, with one end-of-text after
    the last, to the ids of the whole document, in both encoders."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ci_tokens / TOKENIZER_DIR / TOKENIZER_JSON))
    tok.encode_special_tokens = True
    texts = ["a  b\t\tc \n\n d it's  x\u2003z" * 40] + [d["text"] for d in fixture_docs(40)]
    monkeypatch.setattr(encode, "PART_CHARS", 200)
    cut = [encode.parts(t) for t in texts]
    assert ["".join(p) for p in cut] == texts and max(len(p) for c in cut for p in c) <= 200
    assert sum(len(c) > 1 for c in cut) > 10
    for c in cut:  # every cut falls after text and before whitespace
        edges = np.cumsum([len(p) for p in c])[:-1]
        whole = "".join(c)
        assert all(whole[e - 1] not in encode._WHITE and whole[e] in encode._WHITE for e in edges)
    flat = [p for c in cut for p in c]
    ends = np.array([i == len(c) - 1 for c in cut for i in range(len(c))])
    for encoder in (encode.WordCacheEncoder(tok), encode.BatchEncoder(tok)):
        assert np.array_equal(encoder.encode(flat, 0, np.uint16, ends), encoder.encode(texts, 0, np.uint16))


def test_bpe_learns_the_same_merges_from_a_long_document_in_parts(monkeypatch):
    from morph.data.tokenizer import train_bpe

    texts = [" ".join(d["text"] for d in fixture_docs(30))]
    monkeypatch.setattr(encode, "PART_CHARS", len(texts[0]))
    whole = train_bpe(texts, 400).to_str()
    monkeypatch.setattr(encode, "PART_CHARS", 500)
    assert len(encode.parts(texts[0])) > 10
    assert train_bpe(texts, 400).to_str() == whole

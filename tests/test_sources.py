"""The sources data.paths names: one glob rule for the sample and the graph, and a bad source refused before
anything is lost (issue 31, causes 5 and 6). Rows beside tests/test_faults.py, checked the same ways: the exit
code, a message naming the file and the fix, every file that existed keeps its sha256, and the recovery."""
from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path

import pytest

import test_faults as faults
from conftest import write_params
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import MANIFEST, TOKENS_META
from morph.data.shards import read_docs, write_docs
from morph.workflow import pipeline
from test_end_to_end import CI, planned_jobs, sh
from test_faults import FIXTURE, SAMPLE, refused, results, run_morph, snapshot

SHARD = f"data/raw/fixture/{FIXTURE[0].name}"
EXTRA = "data/raw/fixture/zz-extra.jsonl.zst"
# Training draws most of one shard's text, so a second copy of it puts held-out documents in training.
MOSTLY_TRAINING = {"data.train_tokens": 1_200_000, "data.val_tokens": 20_000}


def test_the_glob_rule_walks_each_folder_once_and_reads_each_file_once(tmp_path):
    """Two links back up the tree would make glob's `**` walk 2^40 paths; a link to a shard is its shard."""
    from morph.core.data import source_files

    folder = tmp_path / "raw/a"
    folder.mkdir(parents=True)
    shutil.copy2(FIXTURE[0], folder / "s.jsonl.zst")
    (folder / "alias.jsonl.zst").symlink_to("s.jsonl.zst")
    (folder / "loop").symlink_to(".")
    (folder / "up").symlink_to("..")
    (tmp_path / "raw/b").symlink_to("a")
    with contextlib.chdir(tmp_path):
        assert source_files(["raw/**/*.jsonl.zst"]) == ["raw/a/s.jsonl.zst"]
        assert source_files(["raw/*/*.jsonl.zst", "raw/b/*.jsonl.zst"]) == ["raw/a/s.jsonl.zst"]
    assert source_files([f"{tmp_path}/raw/**/*.jsonl.zst"]) == [f"{tmp_path}/raw/a/s.jsonl.zst"]


def test_a_symlink_loop_under_data_raw_repeats_no_document_in_the_sample_or_the_graph(tmp_path, capsys):
    """The graph tracks the files the sample reads: the one rule names them for both."""
    root = faults.tree(tmp_path / "tree")
    faults.edit_params(**{"data.paths": ["data/raw/**/*.jsonl.zst"]})(root)
    (root / "data/raw/fixture/loop").symlink_to(".")
    code, err = run_morph(SAMPLE, root, capsys)
    assert code == 0, err
    source = json.loads((root / "out/sample" / MANIFEST).read_text())["source"]
    assert list(source["inputs"]) == [SHARD]
    assert source["docs"] == sum(1 for _ in read_docs(FIXTURE[0]))
    with contextlib.chdir(root):
        [node] = [n for n in pipeline.all_nodes(experiment.load(PARAMS), PARAMS) if n.stage == "sample"]
    assert [d for d in node.deps if d.startswith("data/")] == [SHARD]


def test_a_held_out_document_also_drawn_for_training_is_refused_by_its_text(tmp_path, capsys):
    """The copy holds the shard's documents in reverse order: the check keys on the text, not on a position."""
    root = faults.tree(tmp_path / "tree")
    faults.edit_params(**MOSTLY_TRAINING)(root)
    good = snapshot(root)
    write_docs(root / EXTRA, reversed([record for _, record in read_docs(FIXTURE[0])]))
    broken = snapshot(root)
    code, err = run_morph(SAMPLE, root, capsys)
    assert code == 2, err
    found = re.search(r"held-out document\(s\) also drawn for training, e\.g\. the text at (\S+):(\d+) is also at "
                      r"(\S+):(\d+);", err)
    assert found and {found[1], found[3]} == {SHARD, EXTRA}, err
    assert int(found[2]) + int(found[4]) == 443  # line n of 442 is line 443 - n of the reversed copy
    assert "remove the duplicate file or documents from the sources" in err and "Traceback" not in err
    assert snapshot(root) == broken, "the refused sample wrote something"
    (root / EXTRA).unlink()
    assert snapshot(root) == good
    code, err = run_morph(SAMPLE, root, capsys)
    assert code == 0, err


# ---- under Snakemake: a bad source is refused before the sample's folder is deleted ------------------------

@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> Path:
    """The data Snakemake built from the fixture's first shard up to meta.json; each row works on a copy."""
    root = faults.two_run_copy(tmp_path_factory.mktemp("sampled") / "tree")
    write_params(root / CI, MOSTLY_TRAINING, base=root / CI)
    for extra in FIXTURE[1:]:
        (root / "data/raw/fixture" / extra.name).unlink()
    sh(["snakemake", "-j1", TOKENS_META, "--configfile", CI], root, timeout=900)
    return root


def data(root: Path) -> dict[str, str]:
    """Every file under data/ (the tree holds no results yet) with its sha256."""
    return {k: v for k, v in results(root).items() if k.startswith("data/")}


def truncated_copy(root: Path) -> None:
    shutil.copy2(FIXTURE[1], root / EXTRA)
    faults.truncate(EXTRA, 100_000)(root)


BAD_SOURCES = {
    "a truncated extra shard": (truncated_copy, (f"{EXTRA}: truncated zstd shard", "re-download it")),
    "an extra shard with a line that is not JSON": (
        faults.write_shard(Path(EXTRA).name, [b'{"text": "fine"}\n', b"not json\n"]),
        (f"{EXTRA}:2: invalid JSON", "fix or remove the line")),
    "an extra copy of a shard": (lambda root: shutil.copy2(FIXTURE[0], root / EXTRA),
                                 ("held-out document(s) also drawn for training", EXTRA,
                                  "remove the duplicate file or documents")),
}


@pytest.mark.parametrize("fault", BAD_SOURCES)
def test_a_bad_extra_shard_is_refused_before_snakemake_deletes_the_sample(fault, sampled, tmp_path):
    root = faults.copy_of(sampled, tmp_path / "tree")
    add, says = BAD_SOURCES[fault]
    add(root)
    before = data(root)
    refused(sh(["snakemake", "-j1", TOKENS_META, "--configfile", CI], root, check=False), *says)
    assert data(root) == before
    (root / EXTRA).unlink()
    assert planned_jobs(root, target=TOKENS_META) == {}

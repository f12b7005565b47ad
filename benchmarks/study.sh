#!/usr/bin/env bash
# Study v2 (configs/study.py), end to end and in sittings:
#   bash benchmarks/study.sh [WORKDIR]      (default work/study2)
# 1. restore: result files of target runs finished in earlier sittings
#    (results/study_v2/runs/, committed) are copied into WORKDIR/runs, so
#    the sweep skips them (each records its settings; a changed recipe is
#    refused, not mixed in);
# 2. build_library: fine-tune every bank task on 1,000 examples and embed it
#    (resumable; its source runs are the sweep's sources);
# 3. transfer: 12 targets x (45 sources + none) x 2 restarts; every finished
#    run's result.json is copied to results/study_v2/runs/ as it appears
#    (every 60 s), to be committed (SWEEP_WORKERS=2: by two workers pinned
#    to a CPU each);
# 4. LogME of every (target, source) pair (benchmarks/study_logme.py: kept
#    per source in results/study_v2/logme/, fine-tuning the source models no
#    sitting scored yet), then evaluate (every method) and report.
# Wall time of every stage of this run (not of earlier sittings):
# results/study_v2/timings.json; the same line, with the runs finished
# before and after, is appended to results/study_v2/sittings.jsonl, so the
# study's cost over all its sittings is the sum of that file's lines (every
# target run's result.json also records its own `seconds`).
#
# A sitting on a machine without the earlier sittings' workdir:
#   STUDY_SOURCES=$(python benchmarks/study_sitting.py --minutes=110 | tail -1) \
#     SWEEP_WORKERS=2 bash benchmarks/study.sh
# runs only the unfinished runs from those sources (and the baselines),
# fine-tuning each source as the sweep first needs it, with the shipped
# library's recipe, scores LogME with the source models it fine-tuned, and
# stops there (no library build, no evaluation).
# LIBRARY=library/minilm-l6 skips the library build (the shipped library is
# that build).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-work/study2}
OUT=results/study_v2
PY=${PYTHON:-.venv/bin/python}
# The library the study builds and ranks with (the shipped one is this
# library, copied to library/minilm-l6 once complete).
LIB=${LIBRARY:-$W/library}
mkdir -p "$W/runs" "$OUT/runs"
count_runs() { find "$OUT/runs" -name result.json | wc -l; }
RUNS_BEFORE=$(count_runs)
SITTING_START=$(date +%s)

save_results() {  # WORKDIR/runs/**/result.json -> results/study_v2/runs/
  (cd "$W/runs" && find . -name result.json) | while read -r f; do
    mkdir -p "$OUT/runs/$(dirname "$f")"
    cp -u "$W/runs/$f" "$OUT/runs/$f"
  done
}

# 1. Restore what earlier sittings finished.
(cd "$OUT/runs" && find . -name result.json) | while read -r f; do
  mkdir -p "$W/runs/$(dirname "$f")"
  [[ -e "$W/runs/$f" ]] || cp "$OUT/runs/$f" "$W/runs/$f"
done

$PY -m taskemb_jax.bank fetch --quiet
declare -A SECONDS_OF
record_sitting() {  # -> timings.json (this run), appended to sittings.jsonl
  local stage args=()
  for stage in build_library transfer logme evaluate report; do
    args+=("${stage}_s=${SECONDS_OF[$stage]:-}")
  done
  $PY - "$OUT" "${args[@]}" "total_s=$(( $(date +%s) - SITTING_START ))" \
    "runs_before=$RUNS_BEFORE" "runs_after=$(count_runs)" \
    "cpus=$(nproc)" <<'PY'
import datetime, os, sys
from taskemb_jax import files
out, fields = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
line = {k: int(v) if v else None for k, v in fields.items()}
line["sources"] = os.environ.get("STUDY_SOURCES") or "all"
line["date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
    "%Y-%m-%dT%H:%M:%SZ")
files.write_json(os.path.join(out, "timings.json"), line)  # Atomic.
text = files.to_json(line, indent=None)
with open(os.path.join(out, "sittings.jsonl"), "a") as f:
  f.write(text + "\n")
print(text)
PY
}
run_stage() {  # run_stage STAGE CONFIG [flags...]
  local stage=$1 config=$2; shift 2
  local start; start=$(date +%s)
  echo "== $stage"
  $PY -m taskemb_jax.main --config="$config" --config.stage="$stage" \
    --config.library="$LIB" "$@"
  SECONDS_OF[$stage]=$(( $(date +%s) - start ))
}

SUBSET=()
if [[ -n "${STUDY_SOURCES:-}" ]]; then
  SUBSET=(--config.transfer.sources="$STUDY_SOURCES")
elif [[ -z "${LIBRARY:-}" ]]; then
  run_stage build_library configs/library.py --workdir="$W"
fi

( while sleep 60; do save_results; done ) &
SAVER=$!
trap 'kill $SAVER 2>/dev/null || true' EXIT
if ((${SWEEP_WORKERS:-1} > 1)); then
  # SWEEP_WORKERS=2: two workers, each pinned to one CPU, share the sweep
  # (1.15-1.22x the train steps per second of one worker on both CPUs,
  # benchmarks/cpu_workers.py); the last to finish merges the matrix.
  start=$(date +%s)
  echo "== transfer ($SWEEP_WORKERS workers)"
  CPUS_PER_WORKER=${CPUS_PER_WORKER:-1} PYTHON=$PY launch/sweep_workers.sh \
    "$SWEEP_WORKERS" "$W" --config=configs/study.py --config.library="$LIB" \
    "${SUBSET[@]}"
  SECONDS_OF[transfer]=$(( $(date +%s) - start ))
else
  run_stage transfer configs/study.py --workdir="$W" "${SUBSET[@]}"
fi
save_results

logme_workers() {  # logme_workers [flags...]: one per sweep worker, pinned
  local n=${SWEEP_WORKERS:-1} pids=() pin i
  for ((i = 0; i < n; i++)); do
    pin=()
    ((n == 1)) || pin=(taskset -c "$i")
    "${pin[@]}" $PY benchmarks/study_logme.py --workdir="$W" \
      --shard="$i/$n" "$@" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
}
echo "== logme"
start=$(date +%s)
if [[ -n "${STUDY_SOURCES:-}" ]]; then
  logme_workers --sources="$STUDY_SOURCES"
  SECONDS_OF[logme]=$(( $(date +%s) - start ))
  record_sitting
  exit 0
fi
logme_workers --finetune
$PY benchmarks/study_logme.py --workdir="$W" --merge
SECONDS_OF[logme]=$(( $(date +%s) - start ))

run_stage evaluate configs/study.py --workdir="$W"
run_stage report configs/study.py --workdir="$OUT" \
  --config.report.matrix="$W" --config.report.evaluation_md="$W/evaluation.md"
cp "$W"/transfer_matrix.json "$W"/transfer_matrix.csv "$W"/evaluation.json \
  "$W"/evaluation.md "$W"/logme_scores.json "$OUT"/
record_sitting

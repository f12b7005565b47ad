#!/usr/bin/env bash
# The offline mini-study, end to end, with the wall time of every stage:
#   bash benchmarks/offline_study.sh [WORKDIR]      (default work/study)
# 1. build_library: fine-tune each study task on 1,000 examples and embed it
#    (TextEmb, TaskEmb) into library/minilm-l6;
# 2. transfer: the LIMITED->LIMITED sweep, 8 targets x (7 sources + no
#    intermediate task) x 3 restarts (resumable: rerun to continue);
# 3. evaluate: every ranking method against the measured transfer (LogME
#    needs the sources' fine-tuned models, kept in WORKDIR/sources);
# 4. report: figures and report.md.
# Results are copied to results/offline_study/ with timings.json.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-work/study}
OUT=results/offline_study
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$W" "$OUT"
$PY -m taskemb_jax.bank fetch --quiet
declare -A SECONDS_OF
for stage in build_library transfer evaluate report; do
  start=$(date +%s)
  extra=()
  dir=$W
  if [[ $stage == report ]]; then
    extra=(--config.report.matrix="$W" --config.report.evaluation_md="$W/evaluation.md")
    dir=$OUT
  fi
  echo "== $stage"
  $PY -m taskemb_jax.main --config=configs/offline_study.py \
    --config.stage=$stage --workdir="$dir" "${extra[@]}" 2>&1 \
    | tee "$W/$stage.log" | grep -v "^W" | grep -E "^(I.*(epoch|run [0-9]|library:|TaskEmb of|LogME)|error|\|)" || true
  SECONDS_OF[$stage]=$(( $(date +%s) - start ))
done
cp "$W"/transfer_matrix.json "$W"/transfer_matrix.csv "$W"/evaluation.json \
  "$W"/evaluation.md "$W"/logme_scores.json "$OUT"/
cat > "$OUT/timings.json" <<JSON
{"build_library_s": ${SECONDS_OF[build_library]}, "transfer_s": ${SECONDS_OF[transfer]},
 "evaluate_s": ${SECONDS_OF[evaluate]}, "report_s": ${SECONDS_OF[report]},
 "cpus": $(nproc), "date": "$(date -u +%FT%TZ)"}
JSON
cat "$OUT/timings.json"

"""The transfer matrix on disk: what the sweep measured, for every stage.

``transfer_matrix.json`` (written by the transfer stage, read by evaluate
and report)::

  {"regime", "sources", "targets", "restarts", "eval_split", "complete",
   "metric": {target: metric name},
   "baseline": {target: {"mean", "std", "runs": [score per restart]}},
   "pairs": {target: {source: {"mean", "std", "runs", "gain"}}}}

``gain`` is the relative gain over the baseline (no intermediate task).
``transfer_matrix.csv`` holds the same cells, a row each.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

from taskemb_jax import files
from taskemb_jax.errors import UserError

BASELINE = "_none"  # The source name of the no-intermediate-task runs.
MATRIX = "transfer_matrix.json"
MATRIX_CSV = "transfer_matrix.csv"


def write_matrix(matrix: dict[str, Any], workdir: str) -> None:
  """Writes transfer_matrix.json and .csv (each atomically)."""
  files.write_json(os.path.join(workdir, MATRIX), matrix)
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["target", "source", "metric", "mean", "std", "gain", "runs"])
  for tgt in matrix["targets"]:
    base = matrix["baseline"].get(tgt)
    if base:
      w.writerow([tgt, BASELINE, matrix["metric"][tgt], f"{base['mean']:.6g}",
                  f"{base['std']:.6g}", "", len(base["runs"])])
    for src, cell in matrix["pairs"][tgt].items():
      w.writerow([tgt, src, matrix["metric"][tgt], f"{cell['mean']:.6g}",
                  f"{cell['std']:.6g}",
                  f"{cell['gain']:.6g}" if "gain" in cell else "",
                  len(cell["runs"])])
  files.write_text(os.path.join(workdir, MATRIX_CSV), buf.getvalue())


def read_matrix(path: str) -> dict[str, Any]:
  """The transfer matrix in a file or a sweep's workdir."""
  if os.path.isdir(path):
    path = os.path.join(path, MATRIX)
  if not os.path.exists(path):
    raise UserError(f"{path}: no transfer matrix (run the transfer stage "
                    "first)")
  return files.read_json(path)


def all_tied(means) -> bool:
  """Whether sources' measured means ([n]) are all equal: then no ranking
  of them is better than another (e.g. a QA target whose runs all predict
  "no answer"), and the target tells ranking methods nothing."""
  means = list(means)
  return bool(means) and max(means) == min(means)

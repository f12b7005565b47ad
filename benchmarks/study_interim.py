r"""Interim scores of the ranking methods while study v2 is still running.

  .venv/bin/python benchmarks/study_interim.py [--runs=results/study_v2] \
      [--out=results/study_v2/interim] [--targets=mr-polarity,hedge]

Reads the finished target runs' result files (the committed copies in
results/study_v2/runs/, or a sweep's workdir), keeps the targets whose
runs from every source and the baseline are finished for the first k
restarts (k as large as all kept targets allow), and scores every method
but LogME (which runs the source models) on that partial matrix with the
evaluate stage's code. Prints the table and writes transfer_matrix.json,
evaluation.json and evaluation.md to --out. The final study's figures come
from `benchmarks/study.sh`; these only show where they are heading.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import study  # pylint: disable=wrong-import-position
from taskemb_jax import evaluation  # pylint: disable=wrong-import-position
from taskemb_jax import files  # pylint: disable=wrong-import-position
from taskemb_jax import library  # pylint: disable=wrong-import-position
from taskemb_jax import matrix as matrix_lib  # pylint: disable=wrong-import-position
from taskemb_jax import rank  # pylint: disable=wrong-import-position
from taskemb_jax import transfer  # pylint: disable=wrong-import-position
from taskemb_jax.errors import UserError  # pylint: disable=wrong-import-position


def finished_restarts(config, runs: str, target: str) -> int:
  """How many restarts of `target` have every run (baseline included)."""
  sources = [s for s in files.comma_list(config.transfer.sources)
             if s != target]
  k = 0
  for r in range(config.transfer.restarts):
    for src in [transfer.BASELINE] + sources:
      settings = transfer.target_run(config, runs, target, src, r)[1]
      if transfer.finished_result(transfer.target_run_dir(
          runs, target, src, r), settings, overwrite=False) is None:
        return k
    k += 1
  return k


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--runs", default=os.path.join(ROOT, "results", "study_v2"))
  p.add_argument("--out", default=os.path.join(ROOT, "results", "study_v2",
                                               "interim"))
  p.add_argument("--library", default=os.path.join(ROOT, "library",
                                                   "minilm-l6"))
  p.add_argument("--targets", default="",
                 help="comma-separated targets to consider (default: all "
                      "of configs/study.py)")
  a = p.parse_args()
  config = study.get_config()
  config.library = a.library
  if a.targets:
    config.transfer.targets = a.targets
  done = {t: finished_restarts(config, a.runs, t)
          for t in files.comma_list(config.transfer.targets)}
  kept = [t for t, k in done.items() if k > 0]
  print("finished restarts per target: " + ", ".join(
      f"{t} {k}" for t, k in done.items()))
  if not kept:
    raise UserError(f"{a.runs}: no target has a finished restart yet")
  config.transfer.targets = ",".join(kept)
  config.transfer.restarts = min(done[t] for t in kept)
  matrix = transfer.merge(config, a.runs)
  assert matrix["complete"], "a kept target lost a run while being read"
  loaded, _ = library.load_all(a.library)
  comps = rank.shared_components(list(loaded.values()))
  methods = [m for m in evaluation.expand_methods(config.evaluate.methods,
                                                  comps) if m != "logme"]
  precomputed = {"description": evaluation.description_scores(
      config, matrix, loaded)}
  result = evaluation.evaluate_matrix(
      matrix, a.library, methods, relevance=config.evaluate.relevance,
      random_draws=config.evaluate.random_draws, precomputed=precomputed,
      rrf_k=config.rank.rrf_k,
      components=files.comma_list(config.rank.components))
  table = evaluation.markdown([result], methods)
  os.makedirs(a.out, exist_ok=True)
  matrix_lib.write_matrix(matrix, a.out)
  files.write_json(os.path.join(a.out, "evaluation.json"),
                   {"methods": methods, "relevance": config.evaluate.relevance,
                    "targets": kept, "restarts": matrix["restarts"],
                    "evaluations": [result]})
  header = (f"Interim: {len(kept)} of {len(done)} targets ({', '.join(kept)}), "
            f"{matrix['restarts']} restart(s); LogME left out.\n\n")
  files.write_text(os.path.join(a.out, "evaluation.md"), header + table)
  print(header + table)


if __name__ == "__main__":
  try:
    main()
  except UserError as e:
    sys.exit(f"error: {e}")

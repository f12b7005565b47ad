r"""Ranking quality of faster recipes for a new target, on the study's matrix.

  .venv/bin/python benchmarks/target_recipes.py [--recipes=default_seed1,e1] \
      [--matrix=results/target_recipes/transfer_matrix.json] \
      [--work=work/recipes] [--out=results/target_recipes]

A new task is ranked after it is fine-tuned and embedded (`embed.embed_target`);
the rank stage's fields `rank.finetune.*` and `rank.embed_examples` make that
faster. Each recipe below re-embeds every target of a finished transfer
matrix the way the rank stage embeds a new task (the evaluate stage with
`--config.evaluate.reembed_targets=true`, in <work>/<recipe>/, resumable:
finished fine-tuning runs are reused) and ranks the library's other tasks
for it; the sources keep the library's embeddings. The ground truth is the
matrix's measured transfer, so a recipe's ρ and NDCG against the library's
own recipe (the `library` row: the targets' library entries, embedded with
the default recipe and seed 0) say what the speed costs in quality, and the
default recipe with other seeds (`default_seed1`, `default_seed2`) says how
much of a difference is noise. Prints a table and writes summary.json and
summary.md to --out. The seconds per recipe come from
`benchmarks/service_latency.py --flags=...` (the same flags).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from taskemb_jax import evaluation, files, library, transfer
# pylint: enable=wrong-import-position

_E1 = "--config.rank.finetune.num_epochs=1"
_X500 = "--config.rank.embed_examples=500"
_BF16 = "--config.rank.finetune.dtype=bfloat16"
# name -> config overrides of the target's recipe (the default: the library's
# recipe for its class -- 1,000 examples, 2 epochs -- and 1,000 examples
# embedded).
RECIPES = {
    "default_seed1": ["--config.transfer.source_seed=1"],
    "default_seed2": ["--config.transfer.source_seed=2"],
    "e2_n1000_x500": [_X500],
    "e2_n1000_x250": ["--config.rank.embed_examples=250"],
    "e1_n1000_x1000": [_E1],
    "e1_n1000_x1000_seed1": [_E1, "--config.transfer.source_seed=1"],
    "e1_n1000_x500": [_E1, _X500],
    "e1_n1000_x500_seed1": [_E1, _X500, "--config.transfer.source_seed=1"],
    "fast_e1_n500_x500": [_E1, "--config.rank.finetune.train_examples=500",
                          _X500],
    "e2_n1000_x1000_bf16": [_BF16],
    "e1_n1000_x500_bf16": [_E1, _X500, _BF16],
    "e2_n1000_x250_bf16": ["--config.rank.embed_examples=250", _BF16],
    # One epoch at twice the learning rate (the library's: 1e-4).
    "e1_lr2e-4_x250_bf16": [_E1, "--config.rank.finetune.learning_rate=2e-4",
                            "--config.rank.embed_examples=250", _BF16],
    # Half the fine-tuning examples, two epochs (half the fine-tuning time).
    "e2_n500_x250_bf16": ["--config.rank.finetune.train_examples=500",
                          "--config.rank.embed_examples=250", _BF16],
    "e2_n500_x250_bf16_seed1": ["--config.rank.finetune.train_examples=500",
                                "--config.rank.embed_examples=250", _BF16,
                                "--config.transfer.source_seed=1"],
    "e1_lr2e-4_x250_bf16_seed1": [
        _E1, "--config.rank.finetune.learning_rate=2e-4",
        "--config.rank.embed_examples=250", _BF16,
        "--config.transfer.source_seed=1"],
}
METHODS = ("textemb", "taskemb", "textemb+taskemb")


def run_recipe(name: str, matrix: str, workdir: str, library_dir: str) -> None:
  """The evaluate stage with the targets re-embedded by recipe `name`."""
  done = os.path.join(workdir, "evaluation.json")
  targets = set(transfer.read_matrix(matrix)["targets"])
  if os.path.exists(done) and targets <= set(
      files.read_json(done)["evaluations"][0]["per_target"]):
    return  # (one of fewer targets is run again, reusing its fine-tuning)
  cmd = [sys.executable, "-m", "taskemb_jax.main", "--config=configs/study.py",
         "--config.stage=evaluate", f"--config.library={library_dir}",
         f"--config.evaluate.matrices={matrix}",
         "--config.evaluate.methods=" + ",".join(METHODS),
         "--config.evaluate.reembed_targets=true",
         f"--workdir={workdir}"] + RECIPES[name]
  print(f"{name}: {' '.join(RECIPES[name])}", flush=True)
  subprocess.run(cmd, cwd=ROOT, check=True)


def score(matrix: dict, library_dir: str, workdir: str | None) -> dict:
  """Evaluation of the targets' embeddings in <workdir>/targets/ (None: the
  library's own)."""
  targets = None
  if workdir is not None:
    targets = {t: library.load(os.path.join(
        workdir, "targets", files.safe_name(t), "target_library"), t)
               for t in matrix["targets"]}
  return evaluation.evaluate_matrix(matrix, library_dir, list(METHODS),
                                    targets=targets)


def table(rows: dict) -> str:
  head = ["recipe"] + [f"{m} {s} {k}" for m in METHODS
                       for s in ("in-class", "all") for k in ("ρ", "NDCG")]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for name, e in rows.items():
    cells = [name]
    for m in METHODS:
      for s in ("in-class", "all"):
        r = e["mean"].get(s, {}).get(m)
        # The spread over the matrix's restarts (each restart alone as the
        # ground truth), where it has more than one.
        sd = e.get("restart_std", {}).get(s, {}).get(m)
        pm = lambda k, f=1: f" ± {f * sd[k]:.2f}" if sd else ""
        cells += ([f"{r['rho']:.2f}{pm('rho')}",
                   f"{100 * r['ndcg']:.1f}{pm('ndcg', 100)}"] if r
                  else ["", ""])
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "TaskEmb's ρ per target (in-class / all):", ""]
  for name, e in rows.items():
    per = ", ".join(
        f"{t} {v['in-class']['taskemb']['rho']:.0f}/"
        f"{v['all']['taskemb']['rho']:.0f}"
        for t, v in e["per_target"].items() if "taskemb" in v.get("all", {}))
    lines.append(f"* {name}: {per}")
  return "\n".join(lines) + "\n"


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--recipes", default=",".join(RECIPES))
  # Study v2's first finished targets (restart 0 of its 4 classification and
  # 4 tagging targets), kept as they were when the recipes were compared
  # (results/target_recipes/cls4/: the 4 classification targets alone).
  p.add_argument("--matrix", default=os.path.join(
      ROOT, "results", "target_recipes", "transfer_matrix.json"))
  p.add_argument("--library", default=os.path.join(ROOT, "library",
                                                   "minilm-l6"))
  p.add_argument("--work", default=os.path.join(ROOT, "work", "recipes"))
  p.add_argument("--out", default=os.path.join(ROOT, "results",
                                               "target_recipes"))
  p.add_argument("--score_only", action="store_true",
                 help="score the recipes already run; run none")
  a = p.parse_args()
  names = files.comma_list(a.recipes)
  unknown = [n for n in names if n not in RECIPES]
  if unknown:
    sys.exit(f"error: unknown recipe(s) {', '.join(unknown)}; known: "
             f"{', '.join(RECIPES)}")
  matrix = transfer.read_matrix(a.matrix)
  rows = {"library": score(matrix, a.library, None)}
  for name in names:
    workdir = os.path.join(a.work, name)
    if not a.score_only:
      run_recipe(name, a.matrix, workdir, a.library)
    if os.path.exists(os.path.join(workdir, "evaluation.json")):
      rows[name] = score(matrix, a.library, workdir)
  md = (f"Targets: {', '.join(matrix['targets'])} "
        f"({os.path.relpath(a.matrix, ROOT)}).\n\n"
        + table(rows))
  print(md)
  os.makedirs(a.out, exist_ok=True)
  files.write_json(os.path.join(a.out, "summary.json"), {
      "matrix": os.path.relpath(a.matrix, ROOT), "targets": matrix["targets"],
      "recipes": {n: RECIPES.get(n, []) for n in rows},
      "evaluations": rows})
  files.write_text(os.path.join(a.out, "summary.md"), md)


if __name__ == "__main__":
  main()

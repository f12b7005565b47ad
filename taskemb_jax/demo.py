"""The main command: which of the library's tasks should a new task
fine-tune on first?

`demo_stage` ranks the library's tasks as sources for config.task (embedding
it first with the library's recorded recipe unless the library holds it;
`taskemb_jax.rank`), prints the table, and writes ranking.json, a task map
with the target highlighted (task_space.png) and report.md.
"""

from __future__ import annotations

import os

import ml_collections

from taskemb_jax import files
from taskemb_jax import library as library_lib
from taskemb_jax import rank
from taskemb_jax import report
from taskemb_jax import sharding


def demo_stage(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The main command: rank the library's tasks for a new target, report.

  Embeds config.task (a held-out offline task, or your own <kind>:<path>)
  with the library's options unless the library has it, ranks the library's
  sources, prints the table and writes ranking.json, task_space.png and
  report.md into the workdir.
  """
  out_dir = workdir or "demo"
  result = rank.rank_stage(config, out_dir)
  sharding.on_writer(lambda: _write_report(config, out_dir, result))
  return os.path.join(out_dir, "report.md")


def _write_report(config: ml_collections.ConfigDict, out_dir: str,
                  result: dict) -> None:
  """task_space.png and report.md of a ranking."""
  loaded, _ = library_lib.load_all(config.library, skip_unreadable=True)
  target_lib = os.path.join(out_dir, "target_library")
  if config.task not in loaded and os.path.isdir(target_lib):
    loaded[config.task] = library_lib.load(target_lib, config.task)
  report.plot_task_space(loaded, os.path.join(out_dir, "task_space.png"),
                  highlight=config.task)
  lines = [f"# Which task should `{config.task}` fine-tune on first?", "",
           f"Method: `{result['method']}` over the library `{config.library}`"
           f" ({len(result['sources'])} sources, scope {result['scope']}).",
           "", "| rank | source | class | score | examples |",
           "|---|---|---|---|---|"]
  for s in result["sources"]:
    lines.append(f"| {s['rank']} | {s['name']} | {s['family']} | "
                 f"{s['score']:.4f} | {s['num_examples']} |")
  lines += ["", "![task space](task_space.png)", ""]
  path = os.path.join(out_dir, "report.md")
  files.write_text(path, "\n".join(lines) + "\n")
  print(f"\nreport: {path}")

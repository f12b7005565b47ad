"""Figures and a markdown page: the `report` stage.

Writes into the workdir:

* ``task_space.png``: a 2-D PCA map of the tasks' embeddings (TaskEmb: the
  shared components, each L2-normalised, concatenated; and TextEmb),
  coloured by task class;
* ``transfer_gain.png``: a heatmap of the measured relative transfer gains
  (target x source), when a transfer matrix is given;
* ``report.md``: the figures, the evaluation table when there is one, what
  transfers between the task classes and whether large sources help most
  (`class_gains`, `size_effect`), and for every target its ranked sources
  with the measured gain beside each.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position

from taskemb_jax import files  # pylint: disable=wrong-import-position
from taskemb_jax import library as library_lib  # pylint: disable=wrong-import-position
from taskemb_jax import matrix as matrix_lib  # pylint: disable=wrong-import-position
from taskemb_jax import metrics  # pylint: disable=wrong-import-position
from taskemb_jax import rank as rank_lib  # pylint: disable=wrong-import-position
from taskemb_jax import sharding  # pylint: disable=wrong-import-position

COLORS = {"classification": "tab:blue", "qa": "tab:orange",
          "tagging": "tab:green"}


def pca_2d(x: np.ndarray) -> np.ndarray:
  """[n, d] -> [n, 2] coordinates on the first two principal components."""
  x = x - x.mean(0, keepdims=True)
  if len(x) < 2:
    return np.zeros((len(x), 2))
  u, s, _ = np.linalg.svd(x, full_matrices=False)
  coords = u[:, :2] * s[:2]
  return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def task_vectors(loaded: Mapping[str, Mapping[str, Any]], what: str
                 ) -> tuple[list[str], np.ndarray]:
  """Names and [n, d] vectors: TextEmb, or TaskEmb's shared components."""
  names = sorted(n for n, t in loaded.items()
                 if (t["textemb"] is not None if what == "textemb"
                     else bool(t["taskemb"])))
  if what == "textemb":
    return names, np.stack([loaded[n]["textemb"] for n in names])
  comps = rank_lib.shared_components([loaded[n] for n in names])
  rows = []
  for n in names:
    parts = [loaded[n]["taskemb"][c] / max(np.linalg.norm(
        loaded[n]["taskemb"][c]), 1e-30) for c in comps]
    rows.append(np.concatenate(parts))
  return names, np.stack(rows)


def plot_task_space(loaded, out: str, highlight: str = "") -> str:
  fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
  for ax, what in zip(axes, ("taskemb", "textemb")):
    names, x = task_vectors(loaded, what)
    if len(names) < 2:
      ax.set_axis_off()
      continue
    xy = pca_2d(x.astype(np.float64))
    for (px, py), n in zip(xy, names):
      fam = loaded[n]["entry"]["family"]
      ax.scatter(px, py, c=COLORS.get(fam, "gray"), s=90 if n == highlight
                 else 40, edgecolors="black" if n == highlight else "none")
      ax.annotate(n, (px, py), fontsize=8, xytext=(3, 3),
                  textcoords="offset points",
                  weight="bold" if n == highlight else "normal")
    ax.margins(0.18)  # Room for the labels at the edges.
    ax.set_title(f"{'TaskEmb' if what == 'taskemb' else 'TextEmb'} "
                 "(PCA of the task embeddings)")
    ax.set_xticks([])
    ax.set_yticks([])
  for fam, col in COLORS.items():
    axes[0].scatter([], [], c=col, label=fam)
  axes[0].legend(loc="best", fontsize=8)
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)
  return out


def short_label(name: str, width: int = 32) -> str:
  """`name` as a figure label of at most `width` characters: a long one
  (a task given as ``format:path``) keeps its start and its end."""
  if len(name) <= width:
    return name
  head = (width - 1) // 2
  return name[:head] + "\u2026" + name[len(name) - (width - 1 - head):]


def plot_gains(matrix: Mapping[str, Any], out: str) -> str:
  targets, sources = matrix["targets"], matrix["sources"]
  grid = np.full((len(targets), len(sources)), np.nan)
  for i, t in enumerate(targets):
    for j, s in enumerate(sources):
      cell = matrix["pairs"].get(t, {}).get(s)
      if cell and "gain" in cell:
        grid[i, j] = 100 * cell["gain"]
  lim = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
  xs, ys = [short_label(s) for s in sources], [short_label(t) for t in targets]
  # Room for the labels: ~0.08 in a character at the ticks' font size, the
  # source labels turned by 45 degrees; 2.5 in for the colorbar and margins.
  chars_x, chars_y = max(map(len, xs)), max(map(len, ys))
  width = 2.5 + 0.8 * len(sources) + 0.08 * chars_y + 0.06 * chars_x
  fig, ax = plt.subplots(figsize=(
      width, 1.5 + 0.6 * len(targets) + 0.06 * chars_x))
  # Cells fill the axes (0.8 x 0.6 in each), the colorbar beside them.
  im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
  ax.set_xticks(range(len(sources)), xs, rotation=45, ha="right")
  ax.set_yticks(range(len(targets)), ys)
  ax.set_xlabel("source (intermediate task)")
  ax.set_ylabel("target")
  for i in range(len(targets)):
    for j in range(len(sources)):
      if np.isfinite(grid[i, j]):
        ax.text(j, i, f"{grid[i, j]:+.0f}", ha="center", va="center",
                fontsize=7)
  fig.colorbar(im, ax=ax, label="relative gain over no transfer (%)",
               fraction=0.3 / width, pad=0.2 / width)
  ax.set_title(f"Transfer gains, {matrix['regime']}")
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)
  return out


def ranked_lists(matrix, loaded, method: str, components: Sequence[str] = (),
                 rrf_k: float = 60.0) -> str:
  """Markdown: for every target, the method's ranking with measured gains."""
  lines = []
  for tgt in matrix["targets"]:
    cells = matrix["pairs"].get(tgt, {})
    names = [s for s in cells if s in loaded]
    if tgt not in loaded or len(names) < 2:
      continue
    scores = rank_lib.method_scores(method, loaded[tgt],
                                    {n: loaded[n] for n in names},
                                    components=components, rrf_k=rrf_k)
    base = matrix["baseline"].get(tgt, {})
    lines += [f"### {tgt} (no transfer: {base.get('mean', float('nan')):.4f}"
              f" {matrix['metric'][tgt]})", "",
              "| rank | source | score | measured | gain |",
              "|---|---|---|---|---|"]
    for i, n in enumerate(rank_lib.rank_order(scores), 1):
      c = cells[n]
      lines.append(f"| {i} | {n} | {scores[n]:.4f} | {c['mean']:.4f} ± "
                   f"{c['std']:.4f} | {100 * c.get('gain', 0):+.1f}% |")
    lines.append("")
  return "\n".join(lines)


def class_gains(matrix: Mapping[str, Any], family: Mapping[str, str]
                ) -> dict[tuple[str, str], dict[str, float]]:
  """Measured transfer between task classes.

  For every (target class, source class): the mean relative gain of its
  pairs, the share of its pairs with a positive gain, and how many targets
  of the class have their best source in it. `family` maps a task to its
  class; pairs of a task missing from it are left out, and so are targets
  whose sources all measured the same (they have no best source).
  """
  out: dict[tuple[str, str], dict[str, Any]] = {}
  for tgt in matrix["targets"]:
    cells = {s: c for s, c in matrix["pairs"].get(tgt, {}).items()
             if "gain" in c and s in family}
    if (tgt not in family or not cells
        or matrix_lib.all_tied(c["mean"] for c in cells.values())):
      continue
    best = max(cells, key=lambda s: cells[s]["mean"])
    for src, c in cells.items():
      row = out.setdefault((family[tgt], family[src]),
                           {"gains": [], "best_of": 0})
      row["gains"].append(c["gain"])
      row["best_of"] += src == best
  return {k: {"pairs": len(v["gains"]), "mean_gain": float(np.mean(v["gains"])),
              "positive": float(np.mean(np.array(v["gains"]) > 0)),
              "best_of": v["best_of"]} for k, v in sorted(out.items())}


def size_effect(matrix: Mapping[str, Any], size: Mapping[str, float]
                ) -> dict[str, dict[str, float]]:
  """Do sources with more training data transfer better?

  Per target: the Spearman correlation of the sources' training-set sizes
  (`size`: task -> examples; the sources' full sizes, not the examples they
  were fine-tuned on) with the measured target metric, and the rank by
  measured metric (1 = best) of the largest source. Sources of unknown size
  (missing, None or NaN) are left out, and so are targets whose sources
  all measured the same.
  """
  size = {n: float(v) for n, v in size.items()
          if isinstance(v, (int, float)) and np.isfinite(v)}
  out = {}
  for tgt in matrix["targets"]:
    cells = {s: c["mean"] for s, c in matrix["pairs"].get(tgt, {}).items()
             if s in size}
    if len(cells) < 2 or matrix_lib.all_tied(cells.values()):
      continue
    names = list(cells)
    measured = np.array([cells[n] for n in names])
    sizes = np.array([size[n] for n in names], np.float64)
    largest = names[int(np.argmax(sizes))]
    order = sorted(names, key=lambda n: -cells[n])
    out[tgt] = {"spearman": metrics.spearman(sizes, measured),
                "largest": largest,
                "rank_of_largest": order.index(largest) + 1,
                "sources": len(names)}
  return out


def findings_markdown(matrix: Mapping[str, Any],
                      entries: Mapping[str, Mapping[str, Any]]) -> str:
  """The class-to-class table and the size effect, as markdown."""
  family = {n: e["family"] for n, e in entries.items()}
  lines = ["| target class | source class | pairs | mean gain | gain > 0 | "
           "targets it has the best source of |", "|---|---|---|---|---|---|"]
  for (t, s), v in class_gains(matrix, family).items():
    lines.append(f"| {t} | {s} | {v['pairs']} | {100 * v['mean_gain']:+.1f}%"
                 f" | {100 * v['positive']:.0f}% | {v['best_of']} |")
  sizes = size_effect(matrix, {n: e.get("size") for n, e in entries.items()})
  lines += ["", "| target | Spearman(source size, measured) | largest source "
            "| its measured rank |", "|---|---|---|---|"]
  for t, v in sizes.items():
    lines.append(f"| {t} | {v['spearman']:+.2f} | {v['largest']} | "
                 f"{v['rank_of_largest']} of {v['sources']} |")
  if sizes:
    mean = np.mean([v["spearman"] for v in sizes.values()])
    lines.append(f"| mean | {mean:+.2f} | | |")
  return "\n".join(lines)


def report_stage(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes the figures and report.md into the workdir (process 0 of a
  multi-process job)."""
  out_dir = workdir or "report"
  sharding.on_writer(lambda: _write_report(config, out_dir))
  return os.path.join(out_dir, "report.md")


def _write_report(config: ml_collections.ConfigDict, out_dir: str) -> None:
  os.makedirs(out_dir, exist_ok=True)
  loaded, _ = library_lib.load_all(config.library)
  extra = config.report.target_library
  if extra:
    loaded.update(library_lib.load_all(extra)[0])
  lines = ["# Task transferability report", ""]
  plot_task_space(loaded, os.path.join(out_dir, "task_space.png"),
                  highlight=config.task if config.report.highlight_target
                  else "")
  lines += ["![task space](task_space.png)", ""]
  if config.report.matrix:
    matrix = matrix_lib.read_matrix(config.report.matrix)
    plot_gains(matrix, os.path.join(out_dir, "transfer_gain.png"))
    lines += ["## Measured transfer", "", "![transfer gains]"
              "(transfer_gain.png)", ""]
    if config.report.evaluation_md and os.path.exists(
        config.report.evaluation_md):
      with open(config.report.evaluation_md) as f:
        lines += ["## How well each method ranks", "", f.read(), ""]
    lines += ["## What transfers", "",
              findings_markdown(matrix, {n: v["entry"]
                                         for n, v in loaded.items()}), ""]
    comps = files.comma_list(config.rank.components)
    lines += [f"## Rankings ({config.rank.method}) with measured gains", "",
              ranked_lists(matrix, loaded, config.rank.method, comps,
                           config.rank.rrf_k)]
  path = os.path.join(out_dir, "report.md")
  files.write_text(path, "\n".join(lines) + "\n")
  logging.info("wrote %s", path)

"""The package's layout follows the data's path (README, "Architecture").

Each module imports only modules of its own or an earlier layer, so the
import graph has no circle; no module grows past the size a reader can hold;
every stage of the command line resolves; the stage list of
configs/common.py is the real one.
"""

import ast
import importlib
import os
import re

import pytest

from taskemb_jax import main

ROOT = os.path.join(os.path.dirname(__file__), "..", "taskemb_jax")

# The data's path, in README's order ("Architecture"): a module imports
# only modules listed before it.
ORDER = [
    "errors", "files", "progress", "records", "model", "metrics", "sharding",
    "batching", "decoding", "formats", "heads", "pretrained",
    "input_pipeline", "validate", "bank", "paper_tasks", "tasks", "data",
    "checkpoint", "encoders", "runs", "optimizer", "train", "recipe",
    "predict", "embeddings", "library", "description", "embed", "rank",
    "logme", "matrix", "transfer",
    "evaluation", "report", "demo", "main", "service",
]
LAYERS = [{name} for name in ORDER]
MAX_LINES = 520


def _modules():
  """{top-level module name: [source files]} of the package."""
  out = {}
  for dirpath, _, names in os.walk(ROOT):
    for n in names:
      if not n.endswith(".py"):
        continue
      rel = os.path.relpath(os.path.join(dirpath, n), ROOT)
      top = rel.split(os.sep)[0].removesuffix(".py")
      if top != "__init__":
        out.setdefault(top, []).append(os.path.join(dirpath, n))
  return out


def _imports(path):
  """Top-level taskemb_jax modules imported anywhere in the file."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == "taskemb_jax":
        found |= {a.name for a in node.names}
      elif node.module.startswith("taskemb_jax."):
        found.add(node.module.split(".")[1])
    elif isinstance(node, ast.Import):
      for a in node.names:
        if a.name.startswith("taskemb_jax."):
          found.add(a.name.split(".")[1])
  return found


def _layer(name):
  for i, layer in enumerate(LAYERS):
    if name in layer:
      return i
  raise AssertionError(f"module {name!r} is in no layer of LAYERS")


def test_every_module_has_a_layer_and_imports_only_earlier_layers():
  modules = _modules()
  for name, paths in modules.items():
    mine = _layer(name)
    for path in paths:
      for dep in _imports(path) - {name}:
        assert dep in modules, (path, dep)
        assert _layer(dep) <= mine, (
            f"{os.path.relpath(path, ROOT)} imports {dep} (layer "
            f"{_layer(dep)}) from layer {mine}")


def test_no_import_circle():
  modules = _modules()
  graph = {n: set().union(*(_imports(p) for p in ps)) - {n}
           for n, ps in modules.items()}
  state = {}

  def visit(n, path):
    if state.get(n) == "done":
      return
    assert state.get(n) != "open", " -> ".join(path + [n])
    state[n] = "open"
    for d in sorted(graph[n]):
      visit(d, path + [n])
    state[n] = "done"
  for n in sorted(graph):
    visit(n, [])


def test_no_module_is_too_long():
  for paths in _modules().values():
    for path in paths:
      n = sum(1 for _ in open(path, encoding="utf-8"))
      assert n <= MAX_LINES, f"{path}: {n} lines"


def test_stages_resolve_and_configs_list_them():
  for stage, target in main.STAGES.items():
    module, fn = target.split(":")
    assert callable(getattr(importlib.import_module(module), fn)), stage
  text = open(os.path.join(ROOT, "..", "configs", "common.py")).read()
  comment = re.search(r"# What to run.*?\n((?:\s*#.*\n)+)", text).group(0)
  listed = set(re.findall(r"\b([a-z_]+)\b", comment.split(":", 1)[1]))
  assert set(main.STAGES) <= listed


@pytest.mark.parametrize("name", ["cosine_scores", "rank_order",
                                  "reciprocal_rank_fusion", "ndcg",
                                  "rank_of_best", "average_rank_of_best",
                                  "regret_at_k", "spearman"])
def test_ranking_functions_are_importable_from_the_package(name):
  import taskemb_jax  # pylint: disable=import-outside-toplevel
  assert callable(getattr(taskemb_jax, name))

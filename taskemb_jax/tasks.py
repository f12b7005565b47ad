"""Task registry: where every task's data comes from and what it means.

Records and the `Task` type are defined in `taskemb_jax.records`.

Tasks come from three places, all registered in ``TASKS`` by name:

* the 33 tasks of Vu et al. (2020) (`taskemb_jax.paper_tasks`), read from the
  Hugging Face hub where a public copy exists and otherwise from local files
  in the generic formats;
* the offline task bank (``taskemb_jax.bank``), real corpora that ship inside
  package-registry archives;
* a user's own files (``local_task``): JSON Lines, SQuAD JSON or CoNLL
  columns, read by `taskemb_jax.formats`.
"""

from __future__ import annotations

from typing import Sequence

from taskemb_jax import paper_tasks
from taskemb_jax.bank import catalog as bank_catalog
from taskemb_jax.errors import DataError
# The generic formats are read by taskemb_jax.formats; its readers stay
# importable from here.
from taskemb_jax.formats import (  # noqa: F401  pylint: disable=unused-import
    find_split_file, iter_file, local_file_task, local_task, read_conll,
    read_file, read_jsonl, read_squad, record_text)
from taskemb_jax.records import (  # noqa: F401  pylint: disable=unused-import
    DEFAULT_METRIC, KINDS, SPLITS, Record, Task)

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
  """Adds `task` to the registry (a name may be registered once)."""
  if task.name in TASKS:
    raise ValueError(f"task {task.name!r} registered twice")
  TASKS[task.name] = task
  return task


def get_task(name: str) -> Task:
  """Looks a task up by registry name, or builds one from a local path spec.

  Besides registry names, accepts ``<kind>:<path>`` for a user's own data,
  e.g. ``classification:data/mytask`` (see `local_task`).
  """
  if name in TASKS:
    return TASKS[name]
  if ":" in name and name.split(":", 1)[0] in KINDS:
    kind, path = name.split(":", 1)
    return local_task(path, kind)
  raise DataError(
      f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}; "
      "or use <kind>:<path> for your own files (kind in "
      f"{', '.join(KINDS)})")


# The offline bank's tasks and the paper's (neither imports this module).
for _task in bank_catalog.tasks() + paper_tasks.tasks():
  register(_task)
PAPER_TASKS = paper_tasks.PAPER_TASKS


def list_stage(config, workdir) -> list[str]:
  """The `list` stage: prints every registered task, one line each."""
  del config, workdir
  for name in sorted(TASKS):
    t = TASKS[name]
    size = f"{t.size:>7}" if t.size else "      ?"
    print(f"{name:18} {t.kind:14} {t.metric:9} {size}  {t.source:36} "
          f"{t.title}")
  return sorted(TASKS)


def check_trainable(task: Task, records: Sequence[Record]) -> None:
  """Raises DataError unless a train split can teach `task` anything.

  Classification needs two distinct labels, tagging two distinct tags,
  regression labels that vary and extractive QA one answered question: with
  less, the loss is zero from the start and TaskEmb (the Fisher of that
  loss) is all zeros. Malformed records (no label, a label that is not a
  number) are left to the input pipeline, which names their file and line.
  """
  where = f"task {task.name!r}: "
  if task.kind in ("classification", "tagging"):
    what = "label" if task.kind == "classification" else "tag"
    if task.kind == "classification":
      seen = {str(r["label"]) for r in records if r.get("label") is not None}
    else:
      seen = {str(t) for r in records
              if isinstance(r.get("tags"), (list, tuple))
              for t in r["tags"]}
    if len(seen) == 1:
      raise DataError(f"{where}only one {what} in train split "
                      f"({next(iter(seen))!r}); a {task.kind} task needs at "
                      "least two")
  elif task.kind == "regression":
    values = set()
    for r in records:
      try:
        values.add(float(r.get("label")))
      except (TypeError, ValueError):
        pass
    if len(values) == 1:
      raise DataError(f"{where}every label in train split is "
                      f"{next(iter(values))}; a regression task needs labels "
                      "that vary")
  elif task.kind == "qa" and not any(r.get("answers") for r in records):
    raise DataError(f"{where}no question in train split has an answer; a qa "
                    "task needs at least one answered question")

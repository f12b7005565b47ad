"""Which embeddings of a library can be ranked, and which compare.

* `problems` / `verify`: zero, non-finite or missing embeddings (a ranking
  skips such tasks; `python -m taskemb_jax.library verify` lists them).
* `check_compatible`: embeddings of different base models, tokenizers or
  options are never compared.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from taskemb_jax.errors import LibraryError
from taskemb_jax.library.store import PER_TASK_OPTIONS, load, tasks


def problems(loaded: Mapping[str, Any]) -> list[tuple[str, str]]:
  """Why a loaded task's embeddings cannot be ranked: [(what, reason)].

  `what` is 'textemb' or 'taskemb'; reasons are zero or non-finite vectors
  and components that the entry records but the file lacks.
  """
  out = []
  text = loaded.get("textemb")
  if text is not None and (np.ndim(text) != 1 or not np.all(
      np.isfinite(text)) or not np.any(text)):
    out.append(("textemb", "TextEmb is a zero, non-finite or malformed "
                "vector"))
  entry, comps = loaded["entry"], loaded.get("taskemb") or {}
  if "taskemb" in entry:
    recorded = (entry["taskemb"] or {}).get("components") or []
    for c in [c for c in recorded if c not in comps][:1]:
      out.append(("taskemb", f"TaskEmb component {c!r} is missing"))
    if not comps:
      out.append(("taskemb", "TaskEmb has no component"))
    for c, v in comps.items():
      if not np.all(np.isfinite(v)) or not (c.startswith("params/")
                                            or np.any(v)):
        out.append(("taskemb", f"TaskEmb component {c!r} is a zero or "
                    "non-finite vector"))
        break
  return out


def verify(lib: str) -> dict[str, list[str]]:
  """{task: [problem, ...]} of every task (unreadable, damaged, degenerate)."""
  out = {}
  for name in tasks(lib):
    try:
      out[name] = [why for _, why in problems(load(lib, name))]
    except LibraryError as e:
      out[name] = [str(e)]
  return out


def comparable_options(options: Mapping[str, Any]) -> dict[str, Any]:
  """The embedding options that must agree for two tasks to be compared."""
  return {k: v for k, v in options.items() if k not in PER_TASK_OPTIONS}


def check_compatible(entries: Sequence[Mapping[str, Any]],
                     what: str) -> None:
  """Raises LibraryError unless all entries' `what` embeddings compare.

  `what` is 'textemb' or 'taskemb'. Requires the same base model and
  tokenizer fingerprints and the same method options.
  """
  if not entries:
    return
  ref = entries[0]
  for e in entries:
    if what not in e:
      raise LibraryError(f"task {e['name']!r} has no {what}")
    if e["base"] != ref["base"]:
      raise LibraryError(
          f"tasks {ref['name']!r} and {e['name']!r} were embedded with "
          f"different base models or tokenizers ({ref['base']} vs "
          f"{e['base']}); their {what}s cannot be compared")
    a, b = comparable_options(ref[what]), comparable_options(e[what])
    if a != b:
      diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
      raise LibraryError(
          f"tasks {ref['name']!r} and {e['name']!r} have {what}s computed "
          f"with different options ({', '.join(diff)}): "
          f"{ {k: a.get(k) for k in diff} } vs { {k: b.get(k) for k in diff} }")

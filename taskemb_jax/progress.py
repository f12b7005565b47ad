"""Progress of long loops: count, rate and time left, logged and observable.

Usage: ``p = Progress("train", total); p.update(n, loss=0.3)`` in the loop;
a line is logged at most every `every_s` seconds and at the end. Code that
runs stages on behalf of someone else (the service's worker) observes every
update with `add_listener(fn)`; `fn` gets a `Report`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from absl import logging


@dataclasses.dataclass(frozen=True)
class Report:
  """One progress update of a named loop (e.g. 'train', 'taskemb')."""

  name: str
  done: int
  total: int
  rate: float  # Items per second since the loop started.
  eta_s: float  # Estimated seconds left (inf when unknown).


Listener = Callable[[Report], None]
_LISTENERS: list[Listener] = []


def add_listener(fn: Listener) -> None:
  """Calls `fn(report)` on every update of every Progress (same process)."""
  _LISTENERS.append(fn)


def remove_listener(fn: Listener) -> None:
  if fn in _LISTENERS:
    _LISTENERS.remove(fn)


class Progress:
  """Logs `done/total`, items per second and the estimated time left."""

  def __init__(self, name: str, total: int, unit: str = "ex",
               every_s: float = 10.0):
    self.name, self.total, self.unit, self.every_s = name, total, unit, every_s
    self.done = 0
    self.start = self.last = time.perf_counter()
    self._notify(0.0)

  def _notify(self, rate: float) -> None:
    if not _LISTENERS:
      return
    left = (self.total - self.done) / rate if rate > 0 else float("inf")
    report = Report(self.name, self.done, self.total, rate, left)
    for fn in list(_LISTENERS):
      fn(report)

  def update(self, n: int, **values: float) -> None:
    self.done += n
    now = time.perf_counter()
    rate = self.done / max(now - self.start, 1e-9)
    self._notify(rate)
    if now - self.last < self.every_s and self.done < self.total:
      return
    self.last = now
    left = (self.total - self.done) / rate if rate > 0 else float("inf")
    extra = " ".join(f"{k} {v:.4g}" for k, v in values.items())
    logging.info("%s %d/%d %s (%.1f %s/s, %s left) %s", self.name, self.done,
                 self.total, self.unit, rate, self.unit, _fmt(left), extra)


def _fmt(seconds: float) -> str:
  if seconds == float("inf"):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"

"""Progress lines for long loops: count, rate and time left, every few seconds."""

from __future__ import annotations

import time

from absl import logging


class Progress:
  """Logs `done/total`, items per second and the estimated time left.

  Usage: ``p = Progress("train", total); p.update(n, loss=0.3)`` in the loop;
  a line is logged at most every `every_s` seconds and at the end.
  """

  def __init__(self, name: str, total: int, unit: str = "ex",
               every_s: float = 10.0):
    self.name, self.total, self.unit, self.every_s = name, total, unit, every_s
    self.done = 0
    self.start = self.last = time.perf_counter()

  def update(self, n: int, **values: float) -> None:
    self.done += n
    now = time.perf_counter()
    if now - self.last < self.every_s and self.done < self.total:
      return
    self.last = now
    rate = self.done / max(now - self.start, 1e-9)
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

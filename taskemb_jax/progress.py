"""What a person sees while a stage runs: progress bars and status lines.

* `Progress(name, total)`: a long loop's count, rate and time left. Always
  logged (at most every `every_s` seconds); on the terminal, when the
  command line turned it on (`show_on_terminal`), a bar redrawn in place
  (a TTY) or a line every half minute (a log file or pipe).
* `say(message)`: a short status line on the terminal (and in the log).
* `add_listener(fn)`: code that runs stages on someone else's behalf (the
  service's worker) observes every update as a `Report`.

Library code calls these and never prints otherwise; the command line
(`taskemb_jax.main`) decides what reaches the terminal.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable, TextIO

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
_TERMINAL: dict[str, TextIO | None] = {"stream": None}
_BAR_WIDTH = 24
_PIPE_EVERY_S = 30.0  # Progress lines when the terminal is not a TTY.


def add_listener(fn: Listener) -> None:
  """Calls `fn(report)` on every update of every Progress (same process)."""
  _LISTENERS.append(fn)


def remove_listener(fn: Listener) -> None:
  if fn in _LISTENERS:
    _LISTENERS.remove(fn)


def show_on_terminal(stream: TextIO | None = sys.stderr) -> None:
  """Draws bars and status lines on `stream` from now on (None: off)."""
  _TERMINAL["stream"] = stream


def say(message: str) -> None:
  """A short status line for the person at the terminal (also logged)."""
  logging.info("%s", message)
  stream = _TERMINAL["stream"]
  if stream is not None:
    stream.write(message + "\n")
    stream.flush()


class Progress:
  """Logs and shows `done/total`, items per second and the time left."""

  def __init__(self, name: str, total: int, unit: str = "ex",
               every_s: float = 10.0):
    self.name, self.total, self.unit, self.every_s = name, total, unit, every_s
    self.done = 0
    self.start = self.last = self.drawn = time.perf_counter()
    self._closed = False
    self._notify(0.0)

  def _notify(self, rate: float) -> None:
    if not _LISTENERS:
      return
    report = Report(self.name, self.done, self.total, rate, self._left(rate))
    for fn in list(_LISTENERS):
      fn(report)

  def _left(self, rate: float) -> float:
    return (self.total - self.done) / rate if rate > 0 else float("inf")

  def update(self, n: int, **values: float) -> None:
    self.done += n
    now = time.perf_counter()
    rate = self.done / max(now - self.start, 1e-9)
    self._notify(rate)
    finished = self.done >= self.total
    self._draw(now, rate, finished)
    if now - self.last < self.every_s and not finished:
      return
    self.last = now
    extra = " ".join(f"{k} {v:.4g}" for k, v in values.items())
    logging.info("%s %d/%d %s (%.1f %s/s, %s left) %s", self.name, self.done,
                 self.total, self.unit, rate, self.unit,
                 _fmt(self._left(rate)), extra)

  def _draw(self, now: float, rate: float, finished: bool) -> None:
    stream = _TERMINAL["stream"]
    if stream is None or self._closed:
      return
    tty = getattr(stream, "isatty", lambda: False)()
    if not finished and now - self.drawn < (0.2 if tty else _PIPE_EVERY_S):
      return
    self.drawn = now
    frac = min(self.done / max(self.total, 1), 1.0)
    filled = int(round(frac * _BAR_WIDTH))
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    tail = (f"{_fmt(now - self.start)}" if finished
            else f"{_fmt(self._left(rate))} left")
    line = (f"  {self.name:<10} [{bar}] {self.done}/{self.total} {self.unit}"
            f"  {rate:.1f} {self.unit}/s  {tail}")
    if tty:
      stream.write("\r" + line + ("\n" if finished else ""))
    else:
      stream.write(line + "\n")
    stream.flush()
    self._closed = finished


def _fmt(seconds: float) -> str:
  if seconds == float("inf"):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"

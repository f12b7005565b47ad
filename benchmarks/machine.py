"""What the benchmarks record about the machine they ran on.

`append_result` adds one run's entry to a JSON list of runs. `info()` is a
dict of the CPU model, the CPU features that matter to the
matmul kernels (AVX-512, AVX-512 BF16, AMX), the CPUs this process may use,
the load average and the software versions; `CpuShare` measures how much
CPU time other processes took during a measurement (a shared machine makes
absolute timings meaningless, ratios within one run less so).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=wrong-import-position
from taskemb_jax import encoders, files
# pylint: enable=wrong-import-position

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
                     "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_model() -> str:
  return encoders.cpuinfo_field("model name") or platform.processor() or "?"


def cpu_flags() -> list[str]:
  """The features of FLAGS_OF_INTEREST that /proc/cpuinfo lists."""
  flags = set((encoders.cpuinfo_field("flags") or "").split())
  return [f for f in FLAGS_OF_INTEREST if f in flags]


def load_average() -> list[float] | None:
  try:
    return list(os.getloadavg())
  except OSError:
    return None


def info() -> dict:
  """Machine and software facts for a results file (JAX side)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  return {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "cpu_model": cpu_model(), "cpu_flags": cpu_flags(),
      "cpu_count": os.cpu_count(),
      "cpu_affinity": (len(os.sched_getaffinity(0))
                       if hasattr(os, "sched_getaffinity") else None),
      "machine": platform.machine(), "python": platform.python_version(),
      "jax": jax.__version__, "jaxlib": jaxlib.__version__,
      "backend": jax.default_backend(),
      "devices": [str(d) for d in jax.devices()],
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "load_average_start": load_average(),
  }


class CpuShare:
  """CPU time other processes took while measuring (from /proc/stat).

  busy(all CPUs) - CPU time of this process and its children, as a fraction
  of wall time x CPU count (None where /proc/stat is absent). Children are
  counted only once they have been waited for, so with a live worker
  process pass its pid to `others`.
  """

  def __init__(self, pids: tuple[int, ...] = ()):
    self.pids = pids
    self.start = self._sample()

  def _sample(self):
    try:
      with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
      return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = (sum(v) - v[3] - (v[4] if len(v) > 4 else 0)) / ticks
    t = os.times()
    own = t.user + t.system + sum(_proc_cpu(p) for p in self.pids)
    return busy, own, time.perf_counter()

  def others(self) -> float | None:
    end = self._sample()
    if self.start is None or end is None:
      return None
    busy, own, wall = (e - s for e, s in zip(end, self.start))
    return max(0.0, (busy - own) / (wall * (os.cpu_count() or 1)))


def _proc_cpu(pid: int) -> float:
  """User + system CPU seconds of a live process (0 if unreadable)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):
    return 0.0


def wait_until_quiet(max_wait_s: float, window_s: float = 10.0,
                     threshold: float = 0.1) -> float | None:
  """Waits (at most `max_wait_s`) until other processes use less than
  `threshold` of the CPUs over `window_s`; returns the last share seen."""
  deadline = time.monotonic() + max_wait_s
  share = None
  while True:
    probe = CpuShare()
    time.sleep(window_s)
    share = probe.others()
    if share is None or share < threshold or time.monotonic() > deadline:
      return share


def append_result(path: str, entry: dict) -> None:
  """Appends `entry` to the JSON list of runs at `path` (written atomically;
  a missing file starts the list)."""
  runs = files.read_json(path) if os.path.exists(path) else []
  runs.append(entry)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  files.write_json(path, runs)
  print(f"appended to {path}")

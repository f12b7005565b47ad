"""benchmarks/library_build.py's timer on a hand-written log."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location(
    "library_build", os.path.join(ROOT, "benchmarks", "library_build.py"))
library_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(library_build)

LOG = """\
2026-12-01 10:00:00,001 INFO absl: library: task 1/3: alpha
2026-12-01 10:00:30,000 INFO absl: train 320/2176 ex (10.0 ex/s, 3m00s left)
2026-12-01 10:01:00,000 INFO absl: TaskEmb of alpha (1000 examples, 14 components) added to /lib
2026-12-01 10:01:00,500 INFO absl: library: task 2/3: beta
2026-12-01 10:01:40,000 INFO absl: train 64/2176 ex (1.0 ex/s, 9m00s left)
2026-12-01 10:02:00,000 INFO absl: train 128/2176 ex (1.0 ex/s, 9m00s left)
  a continuation line without a time stamp
2026-12-01 10:30:00,000 INFO absl: JAX 0.10.2, process 0/1, devices: [CpuDevice(id=0)]
2026-12-01 10:30:00,000 INFO absl: library: alpha already embedded
2026-12-01 10:30:05,000 INFO absl: library: task 2/3: beta
2026-12-01 10:30:35,000 INFO absl: train 320/2176 ex (10.0 ex/s, 3m00s left)
2026-12-01 10:35:35,000 INFO absl: train 640/2176 ex (10.0 ex/s, 3m00s left)
2026-12-01 10:35:45,000 INFO absl: TaskEmb of beta (1000 examples, 14 components) added to /lib
2026-12-01 10:35:45,100 INFO absl: library: task 3/3: gamma
2026-12-01 10:36:15,000 INFO absl: train 320/2176 ex (10.0 ex/s, 3m00s left)
"""


def test_task_seconds_counts_work_only(tmp_path):
  log = tmp_path / "taskemb.log"
  log.write_text(LOG)
  got = library_build.task_seconds(str(log))
  # alpha: start to its TaskEmb line. beta: 60 s in the stopped sitting
  # (to its last line) + 30 s and 10 s around a 5-minute pause in the
  # second; the 28 minutes between the sittings are not counted. gamma:
  # never finished, counted to the log's last line.
  assert got == {"alpha": 60.0, "beta": 60.0 + 30.0 + 10.0, "gamma": 30.0}

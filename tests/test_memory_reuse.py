"""`sharding.configure_jax` makes train steps reuse their temporaries' pages.

Without it glibc unmaps XLA:CPU's large temporaries after every step and the
kernel page-faults (and zeroes) them again at the next one. Each case runs
in its own process, since the setting is process-wide and must precede
JAX's start.
"""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
from configs import tiny
from taskemb_jax import sharding
if {configure!r}:
  sharding.configure_jax(tiny.get_config())
import jax
import numpy as np
from flax import nnx
from taskemb_jax import heads, train
from taskemb_jax import optimizer as optimizer_lib
from taskemb_jax.model import PRESETS
config = tiny.get_config()
model = heads.TaskModel(PRESETS["tiny"], "classification", 2, rngs=nnx.Rngs(0))
opt = nnx.Optimizer(model, optimizer_lib.create_optimizer(
    **optimizer_lib.optimizer_settings(config)), wrt=nnx.Param)
mesh = sharding.make_mesh()
schedule = sharding.put_replicated(optimizer_lib.schedule_args(
    10, config.learning_rate, config.warmup_proportion), mesh)
steps = train.Steps(model, "classification", mesh, opt)
state = sharding.put_replicated(nnx.state((model, opt)), mesh)
# Attention probabilities of 32 x 4 x 256 x 256 float32 (32 MiB): temporaries
# above glibc's largest mmap threshold.
ids = np.ones((32, 256), np.int32)
batch = sharding.put_batch({{"input_ids": ids, "token_type_ids": ids * 0,
                            "attention_mask": ids,
                            "label": np.zeros(32, np.int32),
                            "weights": np.ones(32, np.float32)}}, mesh)
faults = []
for i in range(6):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  state, m = steps.train(state, batch, jax.random.key(i), schedule)
  jax.block_until_ready(m)
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""


def _last_json_line(script: str):
  """What `script`, run in a new Python process, printed last (JSON)."""
  out = subprocess.run([sys.executable, "-c", script], check=True,
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
  return json.loads(out.stdout.strip().splitlines()[-1])


def _page_faults_per_step(configure: bool) -> list[int]:
  return _last_json_line(_SCRIPT.format(root=ROOT, configure=configure))


@pytest.mark.skipif(not sys.platform.startswith("linux")
                    or "libc" not in (ctypes.util.find_library("c") or ""),
                    reason="glibc only")
def test_configure_jax_stops_page_faults_of_temporaries():
  plain = _page_faults_per_step(configure=False)
  kept = _page_faults_per_step(configure=True)
  # Steps 2.. (after the first allocations): the plain process faults in
  # all of its temporaries again at every step (> 32 MiB = 8192 pages).
  assert min(plain[2:]) > 8192, plain
  # With configure_jax most steps fault in (almost) nothing.
  assert sorted(kept[2:])[1] < 0.1 * min(plain[2:]), (kept, plain)


_CLI_SCRIPT = r"""
import json, sys
sys.path.insert(0, {root!r})
from absl import app
from jax._src import xla_bridge
from taskemb_jax import main, sharding
started = []
keep = sharding.keep_freed_memory
def spy():
  started.append(bool(xla_bridge._backends))  # JAX's backends made yet?
  return keep()
sharding.keep_freed_memory = spy
sys.argv = ["main", "--config=" + {config!r}, "--config.stage=list"]
try:
  app.run(main.main)
except SystemExit:
  pass
print(json.dumps(started))
"""


@pytest.mark.parametrize("config", ["configs/tiny.py", "configs/demo.py"])
def test_the_command_line_keeps_freed_memory_before_jax_starts(config):
  # Called after JAX made its backend (and XLA:CPU its threads), the
  # setting missed those threads: the main command's train steps
  # page-faulted their temporaries again at every step (7 M faults and 17 s
  # of system time in the demo's 60 s).
  started = _last_json_line(_CLI_SCRIPT.format(root=ROOT, config=config))
  assert started and started[0] is False, started

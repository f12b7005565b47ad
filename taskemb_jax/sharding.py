"""One device mesh with a ``data`` axis; shardings; multi-host start-up.

Steps are `jax.jit`-compiled with the model state replicated (``P()``) and
batches split over ``data`` (``P('data')``); the compiler inserts the
gradient all-reduce. The same code runs on 1 CPU, 8 fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), several GPUs and
multi-host TPU slices, where every process feeds its own slice of each global
batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any, Mapping

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from taskemb_jax.errors import ConfigError

DATA = "data"


def maybe_initialize_distributed() -> None:
  """Calls `jax.distributed.initialize()` when launched as several processes.

  Detected from the environment set by our launchers (JAX_COORDINATOR_ADDRESS
  with JAX_NUM_PROCESSES / JAX_PROCESS_ID), by SLURM (SLURM_NTASKS > 1) or by
  a multi-host Cloud TPU (TPU_WORKER_HOSTNAMES with several hosts).
  """
  multi = (
      "JAX_COORDINATOR_ADDRESS" in os.environ
      or int(os.environ.get("SLURM_NTASKS", "1")) > 1
      or len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1)
  if multi and not jax.distributed.is_initialized():
    jax.distributed.initialize()
    logging.info("jax.distributed: process %d of %d", jax.process_index(),
                 jax.process_count())


def configure_jax(config) -> None:
  """Process-wide settings of a run: the persistent compilation cache, and
  memory reuse on the CPU (`keep_freed_memory`); call before JAX starts."""
  cache = config.get("compilation_cache", "")
  if cache:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  keep_freed_memory()


# mallopt(3) parameters of glibc.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
  """Makes glibc's malloc keep freed memory for reuse; True if it could.

  XLA:CPU allocates a step's temporaries (1.3 GB for MiniLM at batch 32,
  length 128) with malloc at every execution. glibc serves blocks that
  large with fresh mmap()s and unmaps them on free, so the kernel
  page-faults and zeroes every temporary page again at every step (about
  340,000 faults per step). With one arena, no mmap and no trimming below
  2 GiB of free memory, a step reuses the pages of the step before. The
  cost: the process keeps its peak heap. Effective for allocations made
  after the call by threads that start after it (call it before JAX
  starts); a no-op where the C library is not glibc.
  """
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement
  except (OSError, AttributeError):
    return False
  return bool(libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
              and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def make_mesh(num_devices: int = -1) -> Mesh:
  """A 1-D mesh named ``data`` over all (or the first `num_devices`) devices."""
  devices = jax.devices()
  if num_devices > 0:
    if num_devices > len(devices):
      raise ConfigError(f"config.num_devices={num_devices} but only "
                        f"{len(devices)} devices are visible")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``; other axes whole."""
  return NamedSharding(mesh, P(DATA))


def check_batch_size(batch_size: int, mesh: Mesh, field: str) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(f"config.{field}={batch_size} must be a multiple of the "
                      f"number of devices ({n})")
  if batch_size % jax.process_count():
    raise ConfigError(f"config.{field}={batch_size} must be a multiple of the "
                      f"number of processes ({jax.process_count()})")


def put_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, Any]:
  """Host-local numpy batch -> global jax arrays sharded over ``data``.

  With several processes each passes its own rows (input_pipeline.batches
  with num_shards=jax.process_count()); the global batch is their
  concatenation in process order.
  """
  sharding = data_sharding(mesh)
  if jax.process_count() == 1:
    return {k: jax.device_put(v, sharding) for k, v in batch.items()}
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def to_host(tree: Any) -> Any:
  """Fetches (possibly sharded, multi-host) arrays as full numpy arrays."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    tree = multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(np.asarray, tree)

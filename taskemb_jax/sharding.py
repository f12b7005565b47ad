"""One device mesh with a ``data`` axis; shardings; multi-process start-up.

Steps are `jax.jit`-compiled with the model state replicated (``P()``) and
batches split over ``data`` (``P('data')``); the compiler inserts the
gradient all-reduce. The same code runs on 1 CPU, 8 fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), several GPUs and
multi-host TPU slices, where every process feeds its own slice of each global
batch.

With several processes (`maybe_initialize_distributed`) every process runs
the same code on the same data; the host-side helpers here keep them in
step: `on_writer` runs a file write on process 0 only (the one writer of
shared files), `agree` makes an error of one process the error of all,
`gather_objects` / `gather_rows` concatenate host values of all processes,
`barrier` waits for all of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import socket
import sys
import threading
from typing import Any, Callable, Iterator, Mapping, TypeVar

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from taskemb_jax import errors
from taskemb_jax.errors import ConfigError, UserError

DATA = "data"
# Seconds a process waits for the others (and the coordinator) at start-up.
TIMEOUT_ENV = "JAX_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 300
# Set to 1 by launchers whose processes JAX finds by itself (launch/tpu_vm.sh).
MULTIHOST_ENV = "TASKEMB_MULTIHOST"
_T = TypeVar("_T")


# ----------------------------------------------------------------------------
# Start-up of a job of several processes.
# ----------------------------------------------------------------------------


def _env_int(name: str) -> int | None:
  value = os.environ.get(name, "").strip()
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ConfigError(f"environment variable {name}={value!r} is not an "
                      "integer") from None


def _launch_settings() -> dict[str, Any] | None:
  """jax.distributed.initialize's arguments when launched as several
  processes; None for a single process.

  launch/local_processes.sh sets JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES
  and JAX_PROCESS_ID. JAX finds them itself under SLURM (SLURM_NTASKS > 1,
  launch/slurm_gpu.sbatch), on GKE TPU slices (TPU_WORKER_HOSTNAMES with
  several hosts) and wherever TASKEMB_MULTIHOST=1 says the process is one
  of a multi-host job (launch/tpu_vm.sh sets it: a TPU VM slice's hosts are
  in its metadata).
  """
  address = os.environ.get("JAX_COORDINATOR_ADDRESS", "").strip()
  if address:
    n, i = _env_int("JAX_NUM_PROCESSES"), _env_int("JAX_PROCESS_ID")
    if n is None or i is None:
      raise ConfigError("JAX_COORDINATOR_ADDRESS is set, so JAX_NUM_PROCESSES "
                        "and JAX_PROCESS_ID must be set too")
    if n < 1 or not 0 <= i < n:
      raise ConfigError(f"JAX_PROCESS_ID={i} must be in [0, "
                        f"JAX_NUM_PROCESSES={n})")
    return {"coordinator_address": address, "num_processes": n,
            "process_id": i}
  slurm = _env_int("SLURM_NTASKS") or 1
  tpu_hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")
  told = os.environ.get(MULTIHOST_ENV, "").strip() not in ("", "0")
  return {} if told or slurm > 1 or len(tpu_hosts) > 1 else None


def _timeout_s() -> int:
  timeout = _env_int(TIMEOUT_ENV)
  if timeout is None:
    return DEFAULT_TIMEOUT_S
  if timeout < 1:
    raise ConfigError(f"{TIMEOUT_ENV}={timeout} must be at least 1 (seconds)")
  return timeout


def _reachable(address: str) -> bool:
  host, _, port = address.rpartition(":")
  try:
    with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
      return True
  except (OSError, ValueError):
    return False


def _start_up_failure(settings: Mapping[str, Any], timeout: int) -> str:
  """The one line a process prints when the start-up did not complete."""
  address = settings.get("coordinator_address")
  if not address:
    return (f"the distributed start-up did not complete within {timeout} s "
            f"(not every process of the job started?); set {TIMEOUT_ENV} to "
            "wait longer")
  i, n = settings["process_id"], settings["num_processes"]
  if i > 0 and not _reachable(address):
    what = f"cannot reach the coordinator at {address} (process 0)"
  else:
    what = (f"not all JAX_NUM_PROCESSES={n} processes joined the coordinator "
            f"at {address}")
  return (f"process {i} of {n}: {what} within {timeout} s; check "
          f"JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID of "
          f"every process, or set {TIMEOUT_ENV} to wait longer")


@contextlib.contextmanager
def _watchdog(timeout: int, message: Callable[[], str]) -> Iterator[None]:
  """Ends the process with one `error:` line (status 2) unless the block
  completes within `timeout` seconds. A thread, because a start-up that
  fails inside JAX aborts the process instead of raising."""
  def fire():
    print(f"error: {message()}", file=sys.stderr, flush=True)
    os._exit(2)  # pylint: disable=protected-access
  timer = threading.Timer(timeout, fire)
  timer.daemon = True
  timer.start()
  try:
    yield
  finally:
    timer.cancel()


def maybe_initialize_distributed() -> None:
  """Joins the job's other processes when launched as several processes.

  Every launcher (launch/local_processes.sh, launch/slurm_gpu.sbatch,
  launch/tpu_vm.sh) comes through here: CPU devices use gloo collectives;
  the start-up waits at most JAX_DISTRIBUTED_TIMEOUT seconds (default 300)
  for the coordinator and the other processes, then ends the process with
  one `error:` line. Then every process checks that all were started with
  the same process count and command line.
  """
  settings = _launch_settings()
  if settings is None or jax.distributed.is_initialized():
    return
  timeout = _timeout_s()
  # Only CPU devices read it; harmless on GPUs and TPUs.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  with _watchdog(timeout, lambda: _start_up_failure(settings, timeout)):
    # JAX's own deadline is later: the watchdog's one line comes first.
    jax.distributed.initialize(**settings, initialization_timeout=timeout + 60)
  logging.info("jax.distributed: process %d of %d", jax.process_index(),
               jax.process_count())
  _check_same_job(settings.get("num_processes"))


def _check_same_job(num_processes: int | None) -> None:
  """Every process of the job has the same process count and command line."""
  argv = hashlib.sha256("\0".join(sys.argv[1:]).encode()).hexdigest()[:16]
  views = gather_objects([[num_processes, argv]])
  counts = {n for n, _ in views if n is not None}
  if counts - {jax.process_count()}:
    claims = ", ".join(f"process {p}: {n}" for p, (n, _) in enumerate(views))
    raise _everywhere(ConfigError(
        f"the job has {jax.process_count()} processes, but JAX_NUM_PROCESSES "
        f"says otherwise ({claims})"))
  if len({a for _, a in views}) > 1:
    raise _everywhere(ConfigError(
        "the processes of the job were started with different command lines; "
        "every process must run the same command"))


def configure_jax(config) -> None:
  """Process-wide settings of a run: the persistent compilation cache (of
  compilations over 1 s, unless the environment's
  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS says otherwise), and memory
  reuse on the CPU (`keep_freed_memory`); call before JAX starts, i.e.
  before any call that makes a backend (`jax.devices()`,
  `jax.process_index()`, an array, a jit)."""
  cache = config.get("compilation_cache", "")
  if cache:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
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
  """`tree` (the same on every process) replicated on every device.

  With several processes the values go through numpy: `jax.device_put` of
  a process-local jax array onto devices of other processes is not
  supported.
  """
  if jax.process_count() > 1:
    tree = jax.tree.map(_host_value, tree)
  return jax.device_put(tree, replicated(mesh))


def _host_value(x: Any) -> Any:
  if isinstance(x, jax.Array) and x.is_fully_addressable and not (
      jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)):
    return np.asarray(x)
  return x


def to_host(tree: Any) -> Any:
  """Fetches (possibly sharded, multi-host) arrays as full numpy arrays."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    tree = multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(np.asarray, tree)


# ----------------------------------------------------------------------------
# Host values across processes: one writer, shared errors, gathers.
# ----------------------------------------------------------------------------


def is_writer() -> bool:
  """Whether this process writes the job's shared files (process 0)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process of the job reaches the barrier `name`."""
  if not _single():
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def _allgather_bytes(data: bytes) -> list[bytes]:
  """`data` of every process, in process order (a collective)."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  sizes = np.asarray(multihost_utils.process_allgather(
      np.array([len(data)], np.int32))).reshape(-1)
  # Sizes rounded up to powers of 2: a few shapes, a few compilations.
  buf = np.zeros(1 << max(int(sizes.max()) - 1, 255).bit_length(), np.uint8)
  buf[:len(data)] = np.frombuffer(data, np.uint8)
  rows = np.asarray(multihost_utils.process_allgather(buf))
  return [rows[p, :sizes[p]].tobytes() for p in range(len(sizes))]


def gather_objects(items: list[Any]) -> list[Any]:
  """The lists of JSON values of every process, concatenated in process
  order (a collective; the list itself with one process)."""
  if jax.process_count() == 1:
    return list(items)
  out: list[Any] = []
  for data in _allgather_bytes(json.dumps(items).encode()):
    out.extend(json.loads(data))
  return out


def gather_rows(rows: np.ndarray) -> np.ndarray:
  """Arrays [n_p, ...] of every process concatenated in process order into
  [sum n_p, ...] (a collective; same dtype and trailing shape on all)."""
  rows = np.ascontiguousarray(rows)
  if jax.process_count() == 1:
    return rows
  parts = _allgather_bytes(rows.tobytes())
  return np.frombuffer(b"".join(parts), rows.dtype).reshape(-1,
                                                            *rows.shape[1:])


_STATE = threading.local()


@contextlib.contextmanager
def _alone() -> Iterator[None]:
  """Marks code that runs on one process only: helpers inside run inline."""
  before = getattr(_STATE, "alone", False)
  _STATE.alone = True
  try:
    yield
  finally:
    _STATE.alone = before


def _single() -> bool:
  return jax.process_count() == 1 or getattr(_STATE, "alone", False)


def _everywhere(error: BaseException) -> BaseException:
  """Marks an error every process of the job raises (`main` prints it once)."""
  error.on_every_process = True
  return error


def _settle(failure: BaseException | None) -> None:
  """Raises on every process the failure of the first process that had one.

  A collective. UserErrors keep their class and message; anything else
  becomes a RuntimeError naming the process on the others.
  """
  described = None
  if failure is not None:
    described = [type(failure).__name__, str(failure),
                 isinstance(failure, UserError)]
  views = gather_objects([described])
  first = next(((p, v) for p, v in enumerate(views) if v is not None), None)
  if first is None:
    return
  p, (name, message, is_user) = first
  if p == jax.process_index():
    raise _everywhere(failure)
  cls = getattr(errors, name, UserError) if is_user else None
  if not (isinstance(cls, type) and issubclass(cls, UserError)):
    raise _everywhere(RuntimeError(f"process {p} failed: {name}: {message}"))
  raise _everywhere(cls(message))


def agree(fn: Callable[[], _T]) -> _T:
  """Runs `fn` on every process; if it fails on any, it fails on all.

  A collective: every process must call it. The error raised everywhere is
  that of the lowest-numbered process that failed (e.g. a bad record in
  its share of the data), so no process is left waiting for the others.
  """
  if _single():
    return fn()
  result, failure = None, None
  try:
    result = fn()
  except Exception as e:  # pylint: disable=broad-except
    failure = e
  _settle(failure)
  return result


def on_writer(fn: Callable[[], _T]) -> _T | None:
  """Runs `fn` (a write of shared files) on process 0 only.

  A collective: process 0 writes once every process has reached it (so no
  process still reads what is being written) and every process continues
  once the write is done (so all read what was written). Returns fn's
  result on process 0 (None on the others); an error of fn is raised on
  every process. Helpers called inside fn run inline (no collective).
  """
  if _single():
    return fn()
  barrier("taskemb_jax.sharding.on_writer")
  result, failure = None, None
  if is_writer():
    with _alone():
      try:
        result = fn()
      except Exception as e:  # pylint: disable=broad-except
        failure = e
  _settle(failure)
  return result

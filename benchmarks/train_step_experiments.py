r"""Variants of the train step timed against each other, interleaved.

  .venv/bin/python benchmarks/train_step_experiments.py \
      --variants=baseline,xla_vector_width_512 --lengths=128,64
  .venv/bin/python benchmarks/train_step_experiments.py --list

Each variant runs in its own worker process (this script with --worker),
so that XLA flags (set in XLA_FLAGS before JAX starts), code patches and
other checkouts of the project (--root=NAME=PATH, e.g. the code before a
change, from `git archive`) stay apart; the parent tells the workers in turn
to run --steps train steps (benchmarks/train_step_vs_torch.py's protocol,
the same model: packaged MiniLM, classification, batch 32, dropout on,
AdamW) and reports each variant's median step time and its speed-up over the
first variant, with the spread of the per-round speed-ups. `torch` (PyTorch
eager, via --torch-python) can be one of the variants.

Results are appended to --out (a JSON list, one entry per run), which is
where the project keeps the measured effect of every experiment, including
those that did not help (benchmarks/results/train_step_experiments.json).
Workers hold a model each: on a 23 GiB machine run at most ~4 at a time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (description, extra environment (XLA_FLAGS is appended to), patch
# function name or None, compute dtype).
VARIANTS: dict[str, tuple[str, dict, str | None, str]] = {
    "baseline": ("the code as it is", {}, None, "float32"),
    "bfloat16": ("config.dtype = bfloat16", {}, None, "bfloat16"),
    "no_dropout": ("dropout rate 0 (what the random bits and masks cost)",
                   {}, "patch_no_dropout", "float32"),
    "xla_vector_width_512": ("XLA:CPU 512-bit vectors for element-wise code",
                             {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=512"},
                             None, "float32"),
    "xla_fast_math": ("XLA:CPU fast math",
                      {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"}, None,
                      "float32"),
    "xla_onednn": ("oneDNN for dots", {"XLA_FLAGS": "--xla_cpu_use_onednn=true"},
                   None, "float32"),
    "xla_no_ynn": ("Eigen dots instead of YNNPACK fusions",
                   {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="},
                   None, "float32"),
    "xla_concurrency_scheduler": (
        "concurrency-optimized scheduler",
        {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"},
        None, "float32"),
    "compact_word_table_bf16": (
        "bfloat16, the word-embedding table cut to 6,000 rows (upper bound "
        "of training on the rows the data uses)", {},
        "patch_compact_word_table", "bfloat16"),
    "compact_word_table": (
        "float32, the word-embedding table cut to 6,000 rows", {},
        "patch_compact_word_table", "float32"),
    "two_host_devices": (
        "the batch split over 2 XLA:CPU devices of one process (the mesh's "
        "data axis), their programs running side by side",
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, None,
        "float32"),
    "two_host_devices_eigen_1": (
        "two_host_devices, each device's matmuls on one thread",
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2 "
                      "--xla_cpu_multi_thread_eigen=false"}, None, "float32"),
    "malloc_keep": ("glibc malloc keeps freed memory (no mmap, one arena, no "
                    "trim): temporaries are not page-faulted every step",
                    {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:"
                     "glibc.malloc.trim_threshold=68719476736:"
                     "glibc.malloc.arena_max=1"}, None, "float32"),
    "malloc_hugetlb": ("glibc malloc asks for transparent huge pages",
                       {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, None,
                       "float32"),
    "cheap_hash": ("dropout bits from a keyed 2 x lowbias32 hash instead of "
                   "threefry-2x32-20", {}, "patch_cheap_hash", "float32"),
    "f32_linear_vjp": ("float32 dense layers with the hand-written matmul "
                       "backward", {}, "patch_f32_linear_vjp", "float32"),
    "packed_mask": ("dropout masks stored as packed bits for the backward "
                    "pass", {}, "patch_packed_mask", "float32"),
    "bfloat16_attention_f32": ("bfloat16, but the attention core's "
                               "matmuls in float32", {},
                               "patch_attention_f32", "bfloat16"),
    "bfloat16_frozen_word_embeddings": (
        "bfloat16, the word-embedding table neither differentiated nor "
        "updated (no [vocab, hidden] gradient, Adam moments or update)",
        {}, "patch_frozen_word_embeddings", "bfloat16"),
    "torch": ("PyTorch eager (benchmarks/torch_step_worker.py)", {}, None,
              "float32"),
}


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--variants", default="baseline,no_dropout",
                 help="comma-separated names (--list); the first is the "
                      "reference")
  p.add_argument("--root", action="append", default=[],
                 help="NAME=PATH[@DTYPE]: a variant NAME running the project "
                      "checkout at PATH as it is (compute dtype DTYPE, "
                      "default float32)")
  p.add_argument("--lengths", default="128,64")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--steps", type=int, default=2)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int, default=2,
                 help="torch.set_num_threads of the torch variant")
  p.add_argument("--torch-python", dest="torch_python",
                 default=os.environ.get("TORCH_PYTHON",
                                        "/work/torchvenv/bin/python"))
  p.add_argument("--note", default="", help="stored with the results")
  p.add_argument("--wait_quiet", type=float, default=0.0,
                 help="before each length, wait up to this many seconds "
                      "for other processes to use < 10%% of the CPUs")
  p.add_argument("--list", action="store_true")
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "train_step_experiments.json"))
  # Worker mode.
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  p.add_argument("--batch_file", default=None, help=argparse.SUPPRESS)
  p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
  return p.parse_args(argv)


# ----------------------------------------------------------------------------
# Patches (applied in a worker before the model is built).
# ----------------------------------------------------------------------------


def patch_no_dropout():
  from taskemb_jax import model  # pylint: disable=g-import-not-at-top
  model.dropout = lambda module, x, rngs: x
  model.dropout_mask = lambda module, shape, rngs: None  # Attention's.
  from taskemb_jax import heads  # pylint: disable=g-import-not-at-top
  heads.dropout = model.dropout


def _lowbias32(x):
  """Wellons' 'lowbias32' integer hash (2 multiplies, 3 xor-shifts)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x = x ^ (x >> jnp.uint32(16))
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> jnp.uint32(15))
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> jnp.uint32(16))


def patch_cheap_hash():
  """Dropout bits from a keyed 2 x lowbias32 hash of the flat index
  instead of 20-round threefry (same key stream, other bits)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from taskemb_jax import model  # pylint: disable=g-import-not-at-top

  def bits(key, shape):
    k = jax.random.key_data(key).astype(jnp.uint32)
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for d in range(len(shape) - 1, -1, -1):
      index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, d) * \
          jnp.uint32(stride)
      stride *= shape[d]
    return _lowbias32(_lowbias32(index ^ k[0]) + k[1])
  model.threefry_bits = bits


def patch_packed_mask():
  """Dropout masks computed once and stored as bits (8 per byte, a reduce
  XLA does not duplicate), unpacked by the forward and backward consumers,
  instead of the hash being fused into both."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from taskemb_jax import model  # pylint: disable=g-import-not-at-top
  plain = model.dropout_mask

  def mask(module, shape, rngs):
    keep = plain(module, shape, rngs)
    if keep is None or shape[-1] % 8:
      return keep
    k8 = keep.reshape(*shape[:-1], shape[-1] // 8, 8).astype(jnp.uint8)
    packed = jnp.sum(k8 << jnp.arange(8, dtype=jnp.uint8), axis=-1,
                     dtype=jnp.uint8)
    bits = (packed[..., None] >> jnp.arange(8, dtype=jnp.uint8)) & 1
    return bits.astype(bool).reshape(shape)
  model.dropout_mask = mask


def patch_f32_linear_vjp():
  """float32 dense layers through the hand-written matmul backward of the
  bfloat16 path (weight gradient as a contraction with a unit axis, which
  XLA:CPU runs as a transpose plus a YNNPACK matmul instead of Eigen's)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from taskemb_jax import model  # pylint: disable=g-import-not-at-top

  def linear(layer, x):
    x2 = x.reshape(-1, x.shape[-1])
    y = model._low_precision_matmul(  # pylint: disable=protected-access
        x2.astype(jnp.float32), layer.kernel.value, layer.dtype or jnp.float32)
    if layer.bias is not None:
      y = y + layer.bias.value
    return y.reshape(*x.shape[:-1], y.shape[-1])
  model._linear = linear  # pylint: disable=protected-access


def patch_attention_f32():
  """The attention core's matmuls in float32 also under bfloat16 compute."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from taskemb_jax import model  # pylint: disable=g-import-not-at-top
  core = model.attention
  model.attention = (lambda q, k, v, bias, keep, keep_prob, dtype:
                     core(q, k, v, bias, keep, keep_prob, jnp.float32))


def patch_frozen_word_embeddings():
  """AdamW on every parameter but the word-embedding table (zero updates:
  XLA drops its gradient, moments and update)."""
  import optax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from taskemb_jax import optimizer  # pylint: disable=g-import-not-at-top
  create = optimizer.create_optimizer

  def label(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: ("frozen" if "word_embeddings" in jax.tree_util.keystr(
            path) else "train"), params)

  def create_frozen(**kw):
    return optax.multi_transform(
        {"train": create(**kw), "frozen": optax.set_to_zero()}, label)
  optimizer.create_optimizer = create_frozen


def patch_compact_word_table():
  """Upper bound of training on the rows of the word-embedding table that
  the data uses: the table cut to its first 6,000 rows (a 1,000-example
  task uses 3-7 k distinct wordpieces) and the batch's ids taken modulo
  6,000 (same shapes and work, other values)."""
  from taskemb_jax import pretrained  # pylint: disable=g-import-not-at-top
  import train_step_vs_torch as vs  # pylint: disable=g-import-not-at-top
  rows = 6000
  load = pretrained.load_encoder

  def load_compact(model, folder, **kw):
    missing = load(model, folder, **kw)
    table = model.bert.embeddings.word_embeddings.embedding
    table.set_value(table.get_value()[:rows])
    return missing
  pretrained.load_encoder = load_compact
  init = vs.Ours.__init__

  def init_compact(self, batch, *a, **kw):
    batch = dict(batch, input_ids=batch["input_ids"] % rows)
    init(self, batch, *a, **kw)
  vs.Ours.__init__ = init_compact


# ----------------------------------------------------------------------------
# Worker.
# ----------------------------------------------------------------------------


def worker(args):
  """Builds the train step (after the variant's patch) and serves 'run K'."""
  sys.path.insert(0, os.environ.get("TASKEMB_ROOT", ROOT))
  sys.path.insert(1, os.path.join(ROOT, "benchmarks"))
  import numpy as np  # pylint: disable=g-import-not-at-top
  # Imported first from TASKEMB_ROOT (the variant's checkout), before
  # train_step_vs_torch puts this checkout on the path.
  import configs.common  # pylint: disable=g-import-not-at-top,unused-import
  import taskemb_jax.train  # pylint: disable=g-import-not-at-top,unused-import
  from taskemb_jax import sharding  # pylint: disable=g-import-not-at-top
  sharding.configure_jax(configs.common.get_config())  # Before JAX starts.
  patch = os.environ.get("TASKEMB_PATCH")
  if patch:
    globals()[patch]()
  import train_step_vs_torch as vs  # pylint: disable=g-import-not-at-top
  data = np.load(args.batch_file)
  batch = {k: data[k] for k in data.files}
  ours = vs.Ours(batch, args.dtype, 3, args.warmup)
  import worker_pipe  # pylint: disable=g-import-not-at-top
  worker_pipe.serve(lambda k: {"times": ours.run(k), "cpu": ours.last_cpu,
                               "loss": ours.loss},
                    {"compile_s": ours.compile_s})


# ----------------------------------------------------------------------------
# Parent.
# ----------------------------------------------------------------------------


def start_worker(name: str, args, batch_file: str, roots: dict):
  """One variant's worker process (a `worker_pipe.Worker`)."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  # pylint: disable=g-import-not-at-top
  import train_step_vs_torch as vs
  import worker_pipe
  # pylint: enable=g-import-not-at-top
  if name == "torch":
    return vs.torch_worker(args.torch_python, batch_file, num_labels=3,
                           threads=args.threads, warmup=args.warmup)
  env = dict(os.environ)
  if name in roots:
    path, _, dtype = roots[name].partition("@")
    env["TASKEMB_ROOT"], dtype = path, dtype or "float32"
  else:
    _, extra, patch, dtype = VARIANTS[name]
    for k, v in extra.items():
      env[k] = (env.get(k, "") + " " + v).strip() if k == "XLA_FLAGS" else v
    if patch:
      env["TASKEMB_PATCH"] = patch
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", name,
         "--batch_file", batch_file, "--dtype", dtype,
         "--warmup", str(args.warmup)]
  return worker_pipe.Worker(cmd, env=env, what=f"the worker of {name}")


def run_length(length: int, names: list[str], args, roots: dict,
               tmp: str) -> dict:
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import numpy as np  # pylint: disable=g-import-not-at-top
  import machine  # pylint: disable=g-import-not-at-top
  import train_step_vs_torch as vs  # pylint: disable=g-import-not-at-top
  batch_file = os.path.join(tmp, f"batch{length}.npz")
  np.savez(batch_file, **vs.make_batch(args.batch, length, 3))
  workers = {}
  try:
    for n in names:  # Started one after the other: compiles do not overlap.
      workers[n] = start_worker(n, args, batch_file, roots)
    if args.wait_quiet:
      machine.wait_until_quiet(args.wait_quiet)
    share = machine.CpuShare(pids=tuple(w.proc.pid for w in workers.values()))
    times, cpu, shares, _ = vs.interleave(
        workers, args.rounds, args.steps,
        tuple(w.proc.pid for w in workers.values()))
    others = share.others()
  finally:
    for w in workers.values():
      w.close()
  rows = vs.summarize(times, cpu, args.batch)
  for n, row in rows.items():
    row["final_loss"] = workers[n].loss
    if n != names[0]:
      row.update(vs.speedup(times, rows, n, names[0], shares))
  return {"length": length, "variants": rows,
          "other_processes_cpu_share_per_round": shares,
          "other_processes_cpu_share": others,
          "load_average_end": machine.load_average()}


def main(argv=None):
  args = parse_args(argv)
  if args.list:
    for n, (d, extra, patch, dt) in VARIANTS.items():
      print(f"{n:<28}{d} {extra or ''} {patch or ''} {dt}")
    return None
  if args.worker:
    return worker(args)
  roots = dict(r.split("=", 1) for r in args.root)
  names = args.variants.split(",")
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import machine  # pylint: disable=g-import-not-at-top
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
  entry = {"date": None, "commit": commit, "note": args.note,
           "variants": {n: (VARIANTS[n][:2] if n in VARIANTS
                            else (f"checkout at {roots[n]}", ""))
                        for n in names},
           "cpu_model": machine.cpu_model(), "cpu_flags": machine.cpu_flags(),
           "rounds": args.rounds, "steps_per_round": args.steps,
           "batch": args.batch, "results": []}
  import datetime  # pylint: disable=g-import-not-at-top
  entry["date"] = datetime.datetime.now().isoformat(timespec="seconds")
  with tempfile.TemporaryDirectory() as tmp:
    for length in [int(x) for x in args.lengths.split(",")]:
      res = run_length(length, names, args, roots, tmp)
      entry["results"].append(res)
      print(f"\nlength {length} (other processes: "
            f"{res['other_processes_cpu_share'] or 0:.0%})")
      for n, row in res["variants"].items():
        sp_ = (f"{row['speedup']:6.3f}x  rounds {row['round_min']:.3f}"
               f"-{row['round_max']:.3f}  fastest "
               f"{row['speedup_fastest_steps']:.3f}x"
               f"  cpu {row['cpu_speedup']:.3f}x  quiet "
               + (f"{row['speedup_quiet_rounds']:.3f}x"
                  if row["quiet_rounds"] else "-")
               + f" ({row['quiet_rounds']})"
               if "speedup" in row else "")
        print(f"  {n:<28}{row['seconds_per_step_median']:8.3f} s "
              f"{row['examples_per_s']:7.1f} ex/s "
              f"{row['cpu_seconds_per_step_median']:7.2f} cpu-s  {sp_}")
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import machine  # pylint: disable=g-import-not-at-top
  machine.append_result(args.out, entry)
  return entry


if __name__ == "__main__":
  main()

r"""TaskEmb throughput next to a training step, measured in one run.

  .venv/bin/python benchmarks/taskemb.py
  .venv/bin/python benchmarks/taskemb.py --length=128 --batch=32 --rounds=4 \
      --out=benchmarks/results/taskemb.json

On a MiniLM-L6-sized model (random weights) with a classification head,
batch 32, length 128, float32, all TaskEmb components (embeddings, every
layer's attention and output, pooler):

* train: the project's jitted train step (`train.Steps(...).train`);
* taskemb: the activation-Fisher step (`embeddings.fisher_step`, empirical
  estimator: one forward and one backward pass to the activations);
* textemb: the TextEmb step (forward only);
* param_fisher: per-example parameter gradients by chunked
  `jax.vmap(jax.grad)` (`embeddings.param_fisher_step`, chunk 8).

The steps are timed in interleaved rounds (train, taskemb, textemb,
param_fisher, train, ...) so that load from other work on a shared machine
hits all of them alike; each figure is the median over rounds. Memory is
XLA's own account of each compiled step (arguments + outputs + temporaries,
`compiled.memory_analysis()`), which is deterministic, plus the growth of the
process's peak RSS while the parameter-Fisher step first runs.

Target: taskemb examples/s >= 0.9 x train examples/s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import nnx  # pylint: disable=wrong-import-position

from configs import common  # pylint: disable=wrong-import-position
from taskemb_jax import embeddings, heads, sharding  # pylint: disable=wrong-import-position
from taskemb_jax.model import PRESETS, component_names  # pylint: disable=wrong-import-position
from benchmarks.rates import train_steps  # pylint: disable=wrong-import-position


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--preset", default="minilm-l6")
  p.add_argument("--rounds", type=int, default=4,
                 help="interleaved timing rounds (median reported)")
  p.add_argument("--param_chunk", type=int, default=8)
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                               "taskemb.json"))
  return p.parse_args(argv)


def make_batch(batch: int, length: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  lengths = np.full(batch, length)
  lengths[batch // 2:] = length * 3 // 4  # Some padding, as in real batches.
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
  ids = rng.integers(1000, 30000, (batch, length)).astype(np.int32) * mask
  ids[:, 0] = 101
  return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
          "attention_mask": mask,
          "label": rng.integers(0, 3, batch).astype(np.int32),
          "weights": np.ones(batch, np.float32)}


def memory_mb(compiled) -> dict:
  m = compiled.memory_analysis()
  if m is None:
    return {}
  mb = 1 / 2**20
  return {"arguments_mb": m.argument_size_in_bytes * mb,
          "outputs_mb": m.output_size_in_bytes * mb,
          "temporaries_mb": m.temp_size_in_bytes * mb,
          "total_mb": (m.argument_size_in_bytes + m.output_size_in_bytes +
                       m.temp_size_in_bytes - m.alias_size_in_bytes) * mb}


def main(argv=None):
  args = parse_args(argv)
  sharding.configure_jax(common.get_config())  # As the CLI, before JAX starts.
  cfg = PRESETS[args.preset]
  model = heads.TaskModel(cfg, "classification", 3, rngs=nnx.Rngs(0))
  steps, train_state, mesh, schedule = train_steps(model)
  batch = sharding.put_batch(make_batch(args.batch, args.length), mesh)
  comps = tuple(component_names(cfg))
  gd = nnx.graphdef(model)
  bert_def, bert_state = nnx.split(model.bert)
  bert_state = jax.tree.map(lambda x: x.copy(), sharding.put_replicated(
      bert_state, mesh))
  # A copy: the train step donates (deletes) its own state's buffers.
  model_state = jax.tree.map(lambda x: x.copy(), sharding.put_replicated(
      nnx.state(model), mesh))
  key = jax.random.key(0)

  fisher = jax.jit(lambda s, b, k: embeddings.fisher_step(
      gd, s, b, k, kind="classification", components=comps))
  textemb = jax.jit(lambda s, b: embeddings.textemb_step(bert_def, s, b))
  pfisher = jax.jit(lambda s, b: embeddings.param_fisher_step(
      gd, s, b, kind="classification", chunk=args.param_chunk))

  compiled = {
      "train": steps.train.lower(train_state, batch, key,
                                 schedule).compile(),
      "taskemb": fisher.lower(model_state, batch, key).compile(),
      "textemb": textemb.lower(bert_state, batch).compile(),
      "param_fisher": pfisher.lower(model_state, batch).compile(),
  }
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  state = {"train": train_state}

  def run(name):
    if name == "train":
      state["train"], out = steps.train(state["train"], batch, key,
                                        schedule)
    elif name == "taskemb":
      out = fisher(model_state, batch, key)
    elif name == "textemb":
      out = textemb(bert_state, batch)
    else:
      out = pfisher(model_state, batch)
    jax.block_until_ready(out)

  for name in compiled:  # Warm-up (first runs allocate).
    run(name)
    if name == "param_fisher":
      rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  times: dict[str, list[float]] = {n: [] for n in compiled}
  for _ in range(args.rounds):
    for name in compiled:
      t = time.perf_counter()
      run(name)
      times[name].append(time.perf_counter() - t)

  rows = {}
  for name, ts in times.items():
    sec = statistics.median(ts)
    rows[name] = {"seconds_per_batch": sec, "seconds_all": ts,
                  "examples_per_s": args.batch / sec,
                  **memory_mb(compiled[name])}
  ratio = rows["taskemb"]["examples_per_s"] / rows["train"]["examples_per_s"]
  result = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "jax": jax.__version__, "cpu_count": os.cpu_count(),
      "preset": args.preset, "batch": args.batch, "length": args.length,
      "components": len(comps), "param_chunk": args.param_chunk,
      "rounds": args.rounds, "steps": rows,
      "taskemb_over_train": ratio, "target": 0.9,
      "param_fisher_peak_rss_growth_mb": rss_after - rss_before,
  }
  print(f"\n{args.preset}, batch {args.batch}, length {args.length}, float32,"
        f" {len(comps)} TaskEmb components, median of {args.rounds} "
        "interleaved rounds\n")
  print(f"{'step':<14}{'ex/s':>8}{'s/batch':>10}{'XLA memory MB':>15}")
  for name, r in rows.items():
    print(f"{name:<14}{r['examples_per_s']:>8.2f}{r['seconds_per_batch']:>10.3f}"
          f"{r.get('total_mb', float('nan')):>15.0f}")
  print(f"\ntaskemb / train throughput: {ratio:.2f} (target >= 0.9)")
  print(f"param_fisher: peak RSS grew by {rss_after - rss_before:.0f} MB on "
        "its first run")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()

r"""PyTorch side of benchmarks/train_step_vs_torch.py (runs in its own venv).

  /work/torchvenv/bin/python benchmarks/torch_step_worker.py \
      --model_dir=DIR --batch_file=BATCH.npz --threads=2

Needs torch and transformers only (never the project or JAX): it is started
by train_step_vs_torch.py with the interpreter given by --torch-python, so
that torch stays out of the project's environment. It builds Hugging Face's
`BertForSequenceClassification` from the packaged MiniLM folder (the same
encoder weights as the JAX side), in training mode (dropout on), with AdamW
(no decay on biases and LayerNorm), linear warm-up/decay and global-norm
clipping, as the project's train step (with --autocast=bfloat16 the forward
pass and loss run under torch.autocast, PyTorch's mixed precision); then it
answers 'run K' on stdin with the times of K train steps
(benchmarks/worker_pipe.py; its ready line also gives the torch version).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import worker_pipe  # pylint: disable=g-import-not-at-top,wrong-import-position


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--model_dir", required=True)
  p.add_argument("--batch_file", required=True,
                 help=".npz with input_ids, token_type_ids, attention_mask, "
                      "label (int arrays)")
  p.add_argument("--num_labels", type=int, default=3)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--learning_rate", type=float, default=2e-5)
  p.add_argument("--weight_decay", type=float, default=0.01)
  p.add_argument("--adam_epsilon", type=float, default=1e-8)
  p.add_argument("--max_grad_norm", type=float, default=1.0)
  p.add_argument("--num_train_steps", type=int, default=1000)
  p.add_argument("--warmup_proportion", type=float, default=0.1)
  p.add_argument("--autocast", default="",
                 help="'bfloat16': forward and loss under "
                      "torch.autocast('cpu', torch.bfloat16)")
  p.add_argument("--warmup", type=int, default=2,
                 help="untimed steps before answering 'ready'")
  return p.parse_args(argv)


def build(args):
  """Model, optimizer, scheduler and the batch as tensors."""
  torch.manual_seed(0)
  model = transformers.BertForSequenceClassification.from_pretrained(
      args.model_dir, num_labels=args.num_labels)
  model.train()
  no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
  groups = [
      {"params": [p for n, p in model.named_parameters()
                  if not any(s in n for s in no_decay)],
       "weight_decay": args.weight_decay},
      {"params": [p for n, p in model.named_parameters()
                  if any(s in n for s in no_decay)],
       "weight_decay": 0.0}]
  opt = torch.optim.AdamW(groups, lr=args.learning_rate, eps=args.adam_epsilon)
  sched = transformers.get_linear_schedule_with_warmup(
      opt, int(args.warmup_proportion * args.num_train_steps),
      args.num_train_steps)
  data = np.load(args.batch_file)
  batch = {k: torch.from_numpy(np.asarray(data[k], np.int64)) for k in
           ("input_ids", "token_type_ids", "attention_mask")}
  batch["labels"] = torch.from_numpy(np.asarray(data["label"], np.int64))
  return model, opt, sched, batch


def make_step(model, opt, sched, batch, max_grad_norm, autocast=""):
  def forward():
    if autocast:
      with torch.autocast("cpu", dtype=getattr(torch, autocast)):
        return model(**batch)
    return model(**batch)

  def step() -> float:
    out = forward()
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return out.loss.item()
  return step


def main(argv=None):
  args = parse_args(argv)
  torch.set_num_threads(args.threads)
  model, opt, sched, batch = build(args)
  step = make_step(model, opt, sched, batch, args.max_grad_norm,
                   args.autocast)
  for _ in range(args.warmup):
    step()
  info = {"torch": torch.__version__,
          "transformers": transformers.__version__,
          "threads": torch.get_num_threads(), "autocast": args.autocast,
          "attn_implementation": getattr(model.config, "_attn_implementation",
                                         None),
          "mkldnn": torch.backends.mkldnn.is_available(),
          "cpu_capability": torch.backends.cpu.get_cpu_capability()}
  worker_pipe.serve(lambda k: worker_pipe.timed(step, k), info)


if __name__ == "__main__":
  main()

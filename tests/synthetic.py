"""Small synthetic tasks of every kind, written in the generic local formats.

Each is learnable by the tiny model in a few epochs and far above chance
only if training works: the label depends on which words occur (or where).
"""

import json
import os

import numpy as np

FILLER = ("the a of and to in is was it for on that with as his they at be "
          "this from have or by one had not but what all were when we there "
          "can an your which their said if do will each about how up out "
          "them then she many some so these would other into has more her "
          "two like him see time could no make than first been its who now "
          "people my made over did down only way find use may water long "
          "little very after words called just where most know").split()
ANIMALS = "cat dog horse cow sheep bird fish lion tiger bear".split()
NAMES = "paris london rome berlin madrid tokyo cairo delhi lima oslo".split()


def _sentence(rng, n):
  return [FILLER[i] for i in rng.integers(0, len(FILLER), n)]


def make_records(kind: str, n: int, seed: int = 0) -> list[dict]:
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    words = _sentence(rng, int(rng.integers(6, 14)))
    if kind == "classification":
      label = ["negative", "positive"][i % 2]
      cue = "excellent" if label == "positive" else "terrible"
      words.insert(int(rng.integers(0, len(words))), cue)
      out.append({"text": " ".join(words), "label": label})
    elif kind == "regression":
      k = int(rng.integers(0, 4))
      for _ in range(k):
        words.insert(int(rng.integers(0, len(words))), "excellent")
      out.append({"text": " ".join(words), "label": float(k)})
    elif kind == "qa":
      city = NAMES[int(rng.integers(0, len(NAMES)))]
      pos = int(rng.integers(0, len(words)))
      words[pos:pos] = ["capital", "city", city]
      context = " ".join(words)
      start = context.index("capital city ") + len("capital city ")
      out.append({"id": f"q{i}", "question": "which city is the capital ?",
                  "context": context,
                  "answers": [{"text": city, "answer_start": start}]})
    else:
      tags = ["O"] * len(words)
      for _ in range(int(rng.integers(1, 3))):
        p = int(rng.integers(0, len(words)))
        words[p] = ANIMALS[int(rng.integers(0, len(ANIMALS)))]
        tags[p] = "B-ANIMAL"
      out.append({"tokens": words, "tags": tags})
  return out


def write_task(folder: str, kind: str, n_train: int = 256, n_val: int = 64,
               seed: int = 0) -> str:
  """Writes train and validation files of a synthetic task; returns folder."""
  os.makedirs(folder, exist_ok=True)
  for split, n, s in (("train", n_train, seed), ("validation", n_val,
                                                 seed + 1000)):
    records = make_records(kind, n, s)
    if kind == "qa":
      path = os.path.join(folder, f"{split}.jsonl")
    elif kind == "tagging":
      path = os.path.join(folder, f"{split}.conll")
    else:
      path = os.path.join(folder, f"{split}.jsonl")
    with open(path, "w") as f:
      for r in records:
        if kind == "tagging":
          f.write("".join(f"{w}\t{t}\n" for w, t in zip(r["tokens"],
                                                       r["tags"])) + "\n")
        else:
          f.write(json.dumps(r) + "\n")
  return folder

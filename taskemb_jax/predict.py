"""Using a trained run: per-example predictions and a Hugging Face export.

* `predict_stage`: predictions of a run's best model for any file in a
  generic format of the run's kind (labels, spans or tags plus the raw
  logits), as JSON Lines.
* `export_stage`: the best model as a folder that transformers'
  ``BertFor{SequenceClassification,QuestionAnswering,TokenClassification}
  .from_pretrained`` loads.
"""

from __future__ import annotations

import dataclasses
import json
import os

import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from taskemb_jax import data
from taskemb_jax import decoding
from taskemb_jax import encoders
from taskemb_jax import files
from taskemb_jax import pretrained
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import train
from taskemb_jax.model import BertConfig


def predict_stage(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes per-example predictions of the run in `workdir` as JSON Lines.

  Input: config.predict_file (a file in a generic format of the run's kind)
  or else config.eval_split of config.task. Output: config.predict_output
  (default <workdir>/predictions.jsonl). Returns the output path.
  """
  model, info, tokenizer = encoders.load_finetuned(workdir, dtype=config.dtype)
  kind, labels = info["kind"], info["labels"]
  if config.predict_file:
    task = tasks_lib.local_file_task(config.predict_file, kind)
    records = task.load("test")
  else:
    task = tasks_lib.get_task(config.task or info["task"])
    records = task.load(config.eval_split, config.data_dir or None)
  window = dataclasses.replace(data.Window.from_config(config),
                               max_length=info["max_length"])
  has_labels = _records_have_labels(kind, records)
  split = data.load_split(task, "", tokenizer, labels, window,
                          records=records if has_labels else
                          _placeholder_labels(kind, records, labels))
  mesh = sharding.make_mesh(config.num_devices)
  state = nnx.state(model)
  steps = train.steps_for(model, kind, mesh)
  outputs = train.run_model(steps, sharding.put_replicated(state, mesh), split,
                            kind, batch_size=config.eval_batch_size,
                            max_length=window.max_length, name="predict")
  # Each process holds the outputs of its share of the records.
  rows = sharding.gather_objects(_prediction_rows(kind, outputs, split,
                                                  labels))
  out_path = config.predict_output or os.path.join(workdir,
                                                   "predictions.jsonl")
  sharding.on_writer(lambda: files.write_text(
      out_path, "".join(files.to_json(row, indent=None) + "\n"
                        for row in rows)))
  if has_labels:
    m = train.compute_metrics(kind, outputs, split, labels)
    logging.info("metrics on the labelled input: %s", m)
  return out_path


def _records_have_labels(kind: str, records: list[dict]) -> bool:
  if kind == "qa":
    return True
  key = "tags" if kind == "tagging" else "label"
  return all(r.get(key) is not None for r in records)


def _placeholder_labels(kind: str, records: list[dict], labels) -> list[dict]:
  """Unlabelled records get a valid placeholder label (never reported)."""
  if kind == "tagging":
    return [dict(r, tags=[labels[0]] * len(r["tokens"])) for r in records]
  return [dict(r, label=labels[0] if labels else 0.0) for r in records]


def _prediction_rows(kind, outputs, split: data.Split, labels) -> list[dict]:
  """The rows of the records of this process's share (JSON values)."""
  rows = _share_rows(kind, outputs, split.share_records, split.features,
                     labels)
  for row in rows:
    if "index" in row:
      row["index"] += split.record_start
  return json.loads(files.to_json(rows, indent=None))


def _share_rows(kind, outputs, recs, feats, labels) -> list[dict]:
  if kind == "classification":
    rows = []
    for i, r in enumerate(recs):
      logits = np.asarray(outputs["logits"][i], np.float64)
      p = np.exp(logits - logits.max())
      rows.append({"index": i, "label": labels[int(outputs["pred"][i])],
                   "logits": logits.round(6).tolist(),
                   "probabilities": (p / p.sum()).round(6).tolist()})
    return rows
  if kind == "regression":
    return [{"index": i, "prediction": float(outputs["pred"][i])}
            for i in range(len(recs))]
  if kind == "qa":
    answers = decoding.postprocess_qa(
        outputs["start_logits"], outputs["end_logits"], feats, recs,
        allow_no_answer=True)
    return [{"id": r["id"], "answer": answers[r["id"]]["text"],
             "score": float(answers[r["id"]]["score"]),
             "null_score": float(answers[r["id"]]["null_score"])}
            for r in recs]
  tags = decoding.decode_tags(outputs["pred"], feats, recs, labels)
  word_logits = _word_logits(outputs["logits"], feats, len(recs))
  return [{"index": i, "tokens": r["tokens"], "tags": tags[i],
           "logits": word_logits[i]} for i, r in enumerate(recs)]


def _word_logits(logits, features, n) -> list[list[list[float]]]:
  """Per record, the logits of each word's first sub-token (truncated: [])."""
  out: list[dict[int, list[float]]] = [dict() for _ in range(n)]
  for f, lg in enumerate(logits):
    rec = features["example_index"][f]
    seen = set()
    for t, w in enumerate(features["word_ids"][f]):
      if w is not None and w not in seen:
        seen.add(w)
        out[rec][w] = np.asarray(lg[t]).round(5).tolist()
  return [[d[w] for w in sorted(d)] for d in out]


def export_stage(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes the best model of the run in `workdir` as a Hugging Face folder
  (process 0 of a job of several)."""
  model, info, _ = encoders.load_finetuned(workdir)
  out = config.export_dir or os.path.join(workdir, "hf_export")
  sharding.on_writer(lambda: pretrained.export_hf(
      model, out, kind=info["kind"], label_names=tuple(info["labels"] or ()),
      tokenizer_dir=info["tokenizer_dir"],
      config=BertConfig(**info["bert_config"])))
  logging.info("exported %s (%s) to %s", info["task"], info["kind"], out)
  return out

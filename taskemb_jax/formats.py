"""Readers of the generic input formats: JSON Lines, SQuAD JSON, CoNLL columns.

A user's own data, and the files of paper tasks without a public copy, come
in one generic format per task kind (records as in `taskemb_jax.records`):

* classification / regression: JSON Lines (`read_jsonl`);
* qa: SQuAD v1.1 / v2.0 JSON, or the same questions flat in JSON Lines
  (`read_squad`);
* tagging: CoNLL columns (`read_conll`).

Every file is UTF-8, with or without a byte-order mark; lines end at LF (a
CR before it is dropped). Every error names the file and the line (JSON
Lines, CoNLL) or the path inside the document (SQuAD JSON), in one line.

Memory. The line-oriented formats are read as streams (`iter_jsonl`,
`iter_conll`, `iter_squad` on ``.jsonl``): a single-file task keeps only the
records of the split asked for, and repeated words, tags and labels share
one string. ``benchmarks/input_memory.py`` (20 MB files; peak Python memory
of ``local_task(file).load("train")``, 80% of the records, as a multiple of
the file size) measures JSON Lines at 1.9x (2.4x when every split was kept)
and CoNLL at 2.8x (11x with two new strings per token line); encoding the
records then adds 3.8x and 6.6x (4.9x and 8.9x with int32 token types and
the tag ids of all records copied at once). One line is held whole, so a line may hold at most `MAX_LINE_BYTES`.
A SQuAD JSON document is parsed at once (4.7x its size at the peak); it may
be at most `MAX_JSON_BYTES`, checked from the file size before reading;
larger data belongs in JSON Lines.
"""

from __future__ import annotations

import json
import os
from typing import Any, Collection, Iterator

from taskemb_jax.errors import DataError
from taskemb_jax.records import KINDS, Record, Task, normalize_key, split_of

# Largest SQuAD JSON document read (it is parsed whole).
MAX_JSON_BYTES = 1 << 30
# Longest line of a line-oriented file (one record of JSON Lines).
MAX_LINE_BYTES = 64 << 20
# Distinct words and tags of a CoNLL file that share one string object.
_SHARED_STRINGS = 1 << 18

_BOM = b"\xef\xbb\xbf"
_EXTENSIONS = {
    "classification": (".jsonl",), "regression": (".jsonl",),
    "qa": (".json", ".jsonl"), "tagging": (".conll", ".txt", ".tsv"),
}
_SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "dev",
                                                       "valid"),
                  "test": ("test",)}


# ----------------------------------------------------------------------------
# Lines and bytes.


def _open(path: str):
  try:
    return open(path, "rb")
  except FileNotFoundError:
    raise DataError(f"{path}: file not found") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror})") from None


def _lines(path: str, keep_blank: bool = False) -> Iterator[tuple[int, str]]:
  """(line number, line without its end) of a UTF-8 file, one at a time."""
  with _open(path) as f:
    lineno = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
      lineno += 1
      if len(raw) > MAX_LINE_BYTES:
        raise DataError(f"{path}:{lineno}: line longer than the "
                        f"{_human(MAX_LINE_BYTES)} limit for one record")
      if lineno == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM):]
      try:
        line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
      except UnicodeDecodeError as e:
        raise DataError(f"{path}:{lineno}: not UTF-8 text ({e.reason} at "
                        f"byte {e.start} of the line)") from None
      if keep_blank or line.strip():
        yield lineno, line


def _human(n: int) -> str:
  for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
    if n >= size:
      return f"{n / size:.3g} {unit}"
  return f"{n} bytes"


def _json_line(path: str, lineno: int, line: str) -> dict:
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
  if not isinstance(obj, dict):
    raise DataError(f"{path}:{lineno}: expected a JSON object")
  return obj


def _read_json(path: str) -> Any:
  """A whole JSON document, at most MAX_JSON_BYTES."""
  with _open(path) as f:
    size = os.fstat(f.fileno()).st_size
    if size > MAX_JSON_BYTES:
      raise DataError(
          f"{path}: {size:,} bytes ({_human(size)}) is over the "
          f"{_human(MAX_JSON_BYTES)} limit for a SQuAD JSON file; split it "
          "or convert it to JSON Lines (one question per line)")
    raw = f.read()
  try:
    text = raw.decode("utf-8-sig")  # Drops a byte-order mark.
  except UnicodeDecodeError as e:
    lineno = raw.count(b"\n", 0, e.start) + 1
    raise DataError(f"{path}:{lineno}: not UTF-8 text ({e.reason})") from None
  del raw
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


# ----------------------------------------------------------------------------
# Classification and regression: JSON Lines.


def iter_jsonl(path: str, kind: str, *,
               labelled: bool = True) -> Iterator[Record]:
  """Classification/regression records from JSON Lines, one at a time.

  Each line: {"text": str, "text_pair": str (optional), "label": str |
  number}. Regression labels must be finite numbers (or strings of them);
  classification labels are kept as strings (ints and bools become their
  string form). Blank lines are skipped; line numbers count every line.
  """
  names: dict[str, str] = {}  # One string per label name.
  for lineno, line in _lines(path):
    obj = _json_line(path, lineno, line)
    where = f"{path}:{lineno}"
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
      raise DataError(f"{where}: field 'text' missing or not a non-empty "
                      "string")
    pair = obj.get("text_pair")
    if pair is not None and not isinstance(pair, str):
      raise DataError(f"{where}: field 'text_pair' must be a string")
    label = obj.get("label")
    if label is None:
      if labelled:
        raise DataError(f"{where}: field 'label' missing")
    elif kind == "regression":
      label = _regression_label(label, where)
    else:
      if isinstance(label, (dict, list, float)):
        raise DataError(f"{where}: classification label {label!r} must be a "
                        "string or an integer")
      label = str(label).lower() if isinstance(label, bool) else str(label)
      label = names.setdefault(label, label)
    yield {"text": text, "text_pair": pair, "label": label}


def _regression_label(label: Any, where: str) -> float:
  if isinstance(label, bool):
    raise DataError(f"{where}: regression label {label!r} is not a number")
  try:
    value = float(label)
  except (TypeError, ValueError):
    raise DataError(f"{where}: regression label {label!r} is not a "
                    "number") from None
  if value != value or value in (float("inf"), float("-inf")):
    raise DataError(f"{where}: regression label {value!r} is not finite")
  return value


def read_jsonl(path: str, kind: str, *, labelled: bool = True) -> list[Record]:
  """All records of `iter_jsonl`, as a list."""
  return list(iter_jsonl(path, kind, labelled=labelled))


# ----------------------------------------------------------------------------
# Extractive QA: SQuAD JSON or JSON Lines.


def iter_squad(path: str) -> Iterator[Record]:
  """QA records from SQuAD v1.1/v2.0 JSON, or flat JSON Lines records.

  SQuAD JSON: ``{"data": [{"paragraphs": [{"context": str, "qas": [{"id",
  "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}``
  (a question with ``is_impossible`` true has no answer). A question without
  an ``id`` gets ``<article>-<paragraph>-<question>`` (indices in the file).
  The document is read whole, so it may be at most `MAX_JSON_BYTES`.

  JSON Lines (a ``.jsonl`` path), streamed: one question per line, ``{"id",
  "question", "context", "answers"}``; a missing ``id`` becomes the line
  number.

  Each error names the file and the line or the path inside the document:
  a wrongly shaped document, a question id used twice (both places named),
  an answer whose text is not at its ``answer_start`` in the context.
  """
  seen: dict[str, str] = {}  # Question id -> where it was first seen.
  if path.endswith(".jsonl"):
    for lineno, line in _lines(path):
      obj = _json_line(path, lineno, line)
      if not isinstance(obj.get("context"), str):
        raise DataError(f"{path}:{lineno}: field 'context' missing or not a "
                        "string")
      yield _qa_record(obj, obj["context"], str(lineno), seen,
                       f"{path}:{lineno}", f"line {lineno}")
    return
  doc = _read_json(path)
  if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
    raise DataError(f"{path}: not SQuAD JSON (no top-level 'data' list)")
  for a, article in enumerate(doc["data"]):
    at = f"data[{a}]"
    if not isinstance(article, dict) or not isinstance(
        article.get("paragraphs"), list):
      raise DataError(f"{path}: {at}: expected an object with 'paragraphs'")
    for p, para in enumerate(article["paragraphs"]):
      at = f"data[{a}].paragraphs[{p}]"
      if not (isinstance(para, dict) and isinstance(para.get("context"), str)
              and isinstance(para.get("qas"), list)):
        raise DataError(f"{path}: {at}: expected an object with a string "
                        "'context' and a list 'qas'")
      for q, qa in enumerate(para["qas"]):
        at = f"data[{a}].paragraphs[{p}].qas[{q}]"
        if not isinstance(qa, dict):
          raise DataError(f"{path}: {at}: expected an object with "
                          "'question'")
        yield _qa_record(qa, para["context"], f"{a}-{p}-{q}", seen,
                         f"{path}: {at}", at)


def _qa_record(qa: dict, context: str, default_id: str, seen: dict[str, str],
               where: str, place: str) -> Record:
  """One checked QA record; `where` prefixes errors, `place` is its locus."""
  if not isinstance(qa.get("question"), str):
    raise DataError(f"{where}: field 'question' missing or not a string")
  rid = qa.get("id")
  if rid is None:
    rid = default_id
  elif isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
    raise DataError(f"{where}: field 'id' must be a non-empty string or an "
                    f"integer, got {rid!r:.60}")
  rid = str(rid)
  if rid in seen:
    raise DataError(f"{where}: question id {rid!r} is also the id at "
                    f"{seen[rid]}; ids must be unique within a file")
  seen[rid] = place
  raw = [] if qa.get("is_impossible") else qa.get("answers") or []
  if not isinstance(raw, list):
    raise DataError(f"{where}: question {rid}: field 'answers' must be a list")
  answers = []
  for m, answer in enumerate(raw):
    if not isinstance(answer, dict):
      at = (f"{where}.answers[{m}]" if place.startswith("data")
            else f"{where}: answers[{m}]")
      raise DataError(f"{at}: question {rid}: expected an object with 'text' "
                      "and 'answer_start'")
    text, start = answer.get("text"), _integer(answer.get("answer_start"))
    if not isinstance(text, str) or start is None:
      raise DataError(f"{where}: question {rid}: an answer needs 'text' and "
                      "an integer 'answer_start'")
    if context[start:start + len(text)] != text:
      raise DataError(f"{where}: question {rid}: answer {text!r} is not in "
                      f"the context at answer_start={start}")
    answers.append({"text": text, "answer_start": start})
  return {"id": rid, "question": qa["question"], "context": context,
          "answers": answers}


def _integer(value: Any) -> int | None:
  """An integer, an integral float or a string of an integer; else None."""
  if isinstance(value, float):
    return int(value) if value.is_integer() else None
  if isinstance(value, (int, str)) and not isinstance(value, bool):
    try:
      return int(value)
    except ValueError:
      return None
  return None


def read_squad(path: str) -> list[Record]:
  """All records of `iter_squad`, as a list."""
  return list(iter_squad(path))


# ----------------------------------------------------------------------------
# Tagging: CoNLL columns.


def iter_conll(path: str, *, labelled: bool = True,
               tagset: Collection[str] | None = None,
               columns: tuple[int, int] = (0, -1)) -> Iterator[Record]:
  """Tagging records from a CoNLL column file, one sentence at a time.

  One token per line; a blank (or whitespace-only) line ends a sentence;
  lines whose first column is ``-DOCSTART-`` are skipped. Columns:

  * if any token line of the file contains a tab, the file is
    tab-separated: columns are split on tabs only (and stripped of
    surrounding spaces), so a word may contain spaces (``New York<TAB>B-LOC``);
  * otherwise columns are split on runs of whitespace;
  * every token line has as many columns as the first token line; a line
    with another count, or a file mixing tab and space separators, is an
    error naming the file and line. The separator is fixed by the first
    token line, so one pass over the file suffices;
  * a labelled file needs at least two columns; an unlabelled one
    (``labelled=False``, for prediction) may have one.

  Args:
    path: the file (UTF-8, an optional byte-order mark).
    labelled: read tags (otherwise every record's ``tags`` is None).
    tagset: if given, every tag must be one of these.
    columns: (word column, tag column), indices into each line's columns;
      the default takes the first and the last.

  Yields:
    ``{"tokens": [str, ...], "tags": [str, ...] | None}``.
  """
  word_col, tag_col = columns
  allowed = None if tagset is None else frozenset(tagset)
  strings: dict[str, str] = {}  # One string per distinct word or tag.
  tokens: list[str] = []
  tags: list[str] = []
  tabs = width = first = None
  for lineno, line in _lines(path, keep_blank=True):
    text = line.rstrip()
    if not text.strip():
      if tokens:
        yield {"tokens": tokens, "tags": tags if labelled else None}
        tokens, tags = [], []
      continue
    if text.split(None, 1)[0] == "-DOCSTART-":
      continue
    if tabs is None:
      tabs, first = "\t" in text, lineno
    cols = _columns(path, lineno, text, tabs, first)
    if width is None:
      width = _first_width(path, lineno, text, cols, labelled, columns)
    elif len(cols) != width:
      raise DataError(_width_error(path, lineno, text, cols, width, tabs,
                                   first, labelled))
    word = cols[word_col]
    if not word:
      raise DataError(f"{path}:{lineno}: empty word in column {word_col}")
    tokens.append(_shared(strings, word))
    if labelled:
      tag = cols[tag_col]
      if allowed is not None and tag not in allowed:
        shown = ", ".join(sorted(allowed)[:12])
        raise DataError(f"{path}:{lineno}: tag {tag!r} is not one of the "
                        f"{len(allowed)} tags of this corpus ({shown}"
                        f"{', ...' if len(allowed) > 12 else ''})")
      tags.append(_shared(strings, tag))
  if tokens:
    yield {"tokens": tokens, "tags": tags if labelled else None}


def _shared(strings: dict[str, str], s: str) -> str:
  """`s`, or an equal string seen before (the first `_SHARED_STRINGS`)."""
  seen = strings.get(s)
  if seen is not None:
    return seen
  if len(strings) < _SHARED_STRINGS:
    strings[s] = s
  return s


def _columns(path: str, lineno: int, text: str, tabs: bool,
             first: int) -> list[str]:
  if tabs:
    return [c.strip() for c in text.split("\t")]
  if "\t" in text:
    raise DataError(f"{path}:{lineno}: a tab, but line {first} separates its "
                    "columns with spaces; use one separator in the whole "
                    "file")
  return text.split()


def _first_width(path: str, lineno: int, text: str, cols: list[str],
                 labelled: bool, columns: tuple[int, int]) -> int:
  if labelled and len(cols) < 2:
    raise DataError(f"{path}:{lineno}: expected 'word ... tag' columns, got "
                    f"{text.strip()!r}")
  if not all(-len(cols) <= c < len(cols) for c in columns[:1 + labelled]):
    raise DataError(f"{path}:{lineno}: no column {columns} in a line of "
                    f"{len(cols)} columns")
  return len(cols)


def _width_error(path: str, lineno: int, text: str, cols: list[str],
                 width: int, tabs: bool, first: int, labelled: bool) -> str:
  where = f"{path}:{lineno}"
  if tabs and "\t" not in text and len(text.split()) == width:
    return (f"{where}: columns separated by spaces, but line {first} "
            "separates them with tabs; use one separator in the whole file")
  if labelled and len(cols) < 2:
    return f"{where}: expected 'word ... tag' columns, got {text.strip()!r}"
  return (f"{where}: {len(cols)} column(s), but line {first} has {width}; "
          "every token line needs the same columns")


def read_conll(path: str, *, labelled: bool = True,
               tagset: Collection[str] | None = None,
               columns: tuple[int, int] = (0, -1)) -> list[Record]:
  """All records of `iter_conll`, as a list."""
  return list(iter_conll(path, labelled=labelled, tagset=tagset,
                         columns=columns))


# ----------------------------------------------------------------------------
# Files, folders and local tasks.


def iter_file(path: str, kind: str, *,
              labelled: bool = True) -> Iterator[Record]:
  """The records of a local file of `kind` in its generic format."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: file not found")
  if kind == "qa":
    return iter_squad(path)
  if kind == "tagging":
    return iter_conll(path, labelled=labelled)
  return iter_jsonl(path, kind, labelled=labelled)


def read_file(path: str, kind: str, *, labelled: bool = True) -> list[Record]:
  """Reads a local file of `kind` in its generic format."""
  return list(iter_file(path, kind, labelled=labelled))


def record_text(kind: str, record: Record) -> str:
  """The text that identifies a record (its split key is derived from it)."""
  if kind == "qa":
    return record["context"] + " || " + record["question"]
  if kind == "tagging":
    return " ".join(record["tokens"])
  return record["text"] + (" || " + record["text_pair"]
                           if record.get("text_pair") else "")


def local_task(path: str, kind: str, name: str | None = None) -> Task:
  """A task from a user's own data.

  `path` is either a folder holding ``train`` / ``validation`` (or ``dev``)
  / ``test`` files in the generic format of `kind`, or a single file, which
  is split 80/10/10 by a hash of each example's text (`split_of`). Loading a
  split of a single file reads the file once and keeps only that split's
  records.
  """
  if kind not in KINDS:
    raise DataError(f"unknown task kind {kind!r}; use one of {KINDS}")
  if not os.path.exists(path):
    raise DataError(f"{path}: no such file or folder")
  name = name or f"{kind}:{path}"
  if os.path.isfile(path):
    def load_file(split, data_dir):
      del data_dir
      out = [r for r in iter_file(path, kind)
             if split_of(normalize_key(record_text(kind, r))) == split]
      if not out:
        keys = {normalize_key(record_text(kind, r))
                for r in iter_file(path, kind)}
        raise DataError(
            f"{path}: no example falls into the {split} split ({len(keys)} "
            "distinct texts; a single file is split 80/10/10 by a hash of "
            "each example's text, so a few dozen distinct examples are "
            "needed); give more examples, or a folder with train / "
            "validation / test files")
      return out
    return Task(name=name, kind=kind, loader=load_file, source="local",
                description=f"local file {path}")

  def load_dir(split, data_dir):
    del data_dir
    return read_file(find_split_file(path, split, kind), kind)
  return Task(name=name, kind=kind, loader=load_dir, source="local",
              description=f"local folder {path}")


def find_split_file(folder: str, split: str, kind: str) -> str:
  """The file of `split` in `folder` (e.g. dev.jsonl for validation)."""
  names = [a + e for a in _SPLIT_ALIASES.get(split, (split,))
           for e in _EXTENSIONS[kind]]
  for name in names:
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      return path
  raise DataError(f"{folder}: no {split} file (looked for {', '.join(names)})")


def local_file_task(path: str, kind: str) -> Task:
  """A task whose every split is the whole of one file (for prediction)."""
  def load(split, data_dir):
    del split, data_dir
    return read_file(path, kind, labelled=False)
  return Task(name=f"{kind}:{path}", kind=kind, loader=load, source="local")

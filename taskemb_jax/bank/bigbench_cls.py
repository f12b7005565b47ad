"""Classification and tagging tasks read from the BIG-bench 1.0.0 sdist.

Formats: BIG-bench JSON ``examples`` with one-hot ``target_scores``
(`parse_scores`); Natural Instructions yes/no subtasks, ``{"input": ...,
"target": ["Yes."]}`` (`parse_yes_no`); TalkDown's JSON lines after a
canary comment line (`parse_talkdown`); and the essential-terms subtask,
whose comma-separated list of essential question words becomes a tag per
token (`parse_essential_terms`). Each parser strips the task's prompt
template, keeping only the human-written text (and text pair).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from taskemb_jax.bank.bigbench_qa import examples, targets
from taskemb_jax.bank.parsers import read_lines, tagging_entry, text_entry
from taskemb_jax.bank.sources import data_file
from taskemb_jax.errors import DataError
from taskemb_jax.records import Entry

# input -> (text, text pair or None); raises ValueError on a bad layout.
Splitter = Callable[[str], tuple[str, str | None]]


def _after(head: str) -> Splitter:
  def split(text: str) -> tuple[str, str | None]:
    if not text.startswith(head):
      raise ValueError(f"input does not start with {head!r}")
    return text[len(head):].strip(), None
  return split


def _whole(text: str) -> tuple[str, str | None]:
  return text.strip(), None


def _vitaminc(text: str) -> tuple[str, str | None]:
  evidence, sep, claim = text.rpartition("\nClaim:")
  if not sep:
    raise ValueError("input lacks '\\nClaim:'")
  return evidence.strip(), claim.strip()


_FEVER = re.compile(r"On \w+ \d{4}, the following claim was made: (.*)\n"
                    r"Q: Was this claim true or false\?\s*\Z", re.S)


def _fever(text: str) -> tuple[str, str | None]:
  m = _FEVER.match(text)
  if m is None:
    raise ValueError("input is not 'On <month year>, the following claim "
                     "was made: ...'")
  return m.group(1).strip(), None


def _presupposition(text: str) -> tuple[str, str | None]:
  first, sep, rest = text.partition("\nSentence 2:")
  if not first.startswith("Sentence 1:") or not sep:
    raise ValueError("input is not 'Sentence 1: ...\\nSentence 2: ...'")
  second = rest.rsplit("\n\nThe answer is:", 1)[0]
  return first[len("Sentence 1:"):].strip(), second.strip()


def _collapse(text: str, pair: str | None) -> tuple[str, str | None]:
  """Whitespace (newlines included) collapsed to single spaces."""
  return " ".join(text.split()), None if pair is None else " ".join(
      pair.split())


def parse_scores(path: str, names: dict[str, str],
                 split: Splitter) -> list[Entry]:
  """Examples whose ``target_scores`` has one top class (`names` maps it)."""
  entries = []
  for where, ex in examples(path):
    scores = ex.get("target_scores")
    if not isinstance(scores, dict) or not scores:
      raise DataError(f"{where}: missing 'target_scores'")
    top = max(scores.values())
    best = [k for k, v in scores.items() if v == top]
    if len(best) != 1 or best[0] not in names:
      raise DataError(f"{where}: target_scores {scores} has no single "
                      f"class among {sorted(names)}")
    try:
      text, pair = _collapse(*split(ex["input"]))
    except ValueError as e:
      raise DataError(f"{where}: {e}") from None
    if text and (pair is None or pair):
      entries.append(text_entry({"text": text, "text_pair": pair,
                                 "label": names[best[0]]}))
  return entries


_SENT_MARK = re.compile(r"\s*Sent \d+:\s*")


def _multirc(text: str, answer_head: str) -> tuple[str, str | None]:
  if not text.startswith("Paragraph-"):
    raise ValueError("input does not start with 'Paragraph-'")
  body, sep, answer = text.rpartition(f"\n{answer_head}:")
  paragraph, sep2, question = body.rpartition("\nQuestion:")
  if not sep or not sep2:
    raise ValueError(f"input lacks '\\nQuestion:' or '\\n{answer_head}:'")
  paragraph = _SENT_MARK.sub(" ", paragraph[len("Paragraph-"):]).strip()
  return f"{question.strip()} {answer.strip()}", paragraph


def _mctaco(text: str) -> tuple[str, str | None]:
  sentence, sep, question = text.rpartition("\nQuestion:")
  if not sentence.startswith("Sentence:") or not sep:
    raise ValueError("input is not 'Sentence: ...\\nQuestion: ...'")
  return question.strip(), sentence[len("Sentence:"):].strip()


def parse_yes_no(path: str, no: str, yes: str,
                 split: Splitter) -> list[Entry]:
  """Natural Instructions yes/no subtasks: ``target`` ``["Yes."]``/``["No."]``."""
  names = {"yes": yes, "no": no}
  entries = []
  for where, ex in examples(path):
    answer = targets(where, ex)[0].strip().rstrip(".").lower()
    if answer not in names:
      raise DataError(f"{where}: target {answer!r} is not Yes./No.")
    try:
      text, pair = _collapse(*split(ex["input"]))
    except ValueError as e:
      raise DataError(f"{where}: {e}") from None
    entries.append(text_entry({"text": text, "text_pair": pair,
                               "label": names[answer]}))
  return entries


def parse_talkdown(path: str) -> list[Entry]:
  """TalkDown JSON lines ``{"id", "label": 0|1, "text"}`` after a canary."""
  entries = []
  for line, raw in enumerate(read_lines(path), 1):
    if not raw.strip() or (line == 1 and raw.startswith("#")):
      continue
    try:
      obj = json.loads(raw)
      label, text = obj["label"], obj["text"]
      if label not in (0, 1) or not isinstance(text, str):
        raise ValueError(f"label {label!r}")
    except (ValueError, KeyError, TypeError) as e:
      raise DataError(f"{path}:{line}: expected a JSON object with label "
                      f"0/1 and text ({e})") from None
    text = " ".join(text.split())
    if text:
      entries.append(text_entry({
          "text": text, "text_pair": None,
          "label": ("not-condescending", "condescending")[label]}))
  return entries


ESSENTIAL_TAGS = ("non-essential", "essential")
_OPTION = re.compile(r"\s*\(A\)")
_EDGES = re.compile(r"^\W+|\W+$")


def _bare(word: str) -> str:
  return _EDGES.sub("", word).lower()


def parse_essential_terms(path: str) -> list[Entry]:
  """Question words tagged essential / non-essential.

  The input is ``Question: <question> (A) ... (B) ...``; the first target
  lists the essential words, comma-separated. Each whitespace token of the
  question (answer options dropped) is essential when its form without
  edge punctuation, lower-cased, is in that list.
  """
  entries = []
  for where, ex in examples(path):
    text = ex["input"]
    if not text.startswith("Question:"):
      raise DataError(f"{where}: input does not start with 'Question:'")
    question = _OPTION.split(text[len("Question:"):], 1)[0]
    essential = {_bare(w) for item in targets(where, ex)[0].split(",")
                 for w in item.split()} - {""}
    tokens = question.split()
    if tokens and essential:
      entries.append(tagging_entry({
          "tokens": tokens,
          "tags": [ESSENTIAL_TAGS[_bare(t) in essential] for t in tokens]}))
  return entries


def _bb(name: str, parse: Callable[..., list[Entry]], *args):
  return lambda data_dir: parse(data_file("bigbench", name, data_dir), *args)


_NI = "natural_instructions/subtask"
_SENTIMENT = ("negative", "neutral", "ambivalent", "positive")
_INTENTS = ("add_to_playlist", "book_restaurant", "get_weather", "play_music",
            "search_screening_event", "search_creative_work", "rate_book")
_NLI = ("entailment", "neutral", "contradiction")
_FROM = " from the BIG-bench 1.0.0 sdist (PyPI)"

# name -> kind, source, parser(data_dir), labels, metric, title, description.
SPECS: dict[str, dict[str, Any]] = {
    "essential-terms": dict(
        kind="tagging", source="bigbench",
        parse=_bb(f"{_NI}044_essential_terms_identifying_essential_words"
                  "/task.json", parse_essential_terms),
        labels=ESSENTIAL_TAGS, metric="accuracy",
        title="Essential words of science exam questions, tag per token",
        description=(
            "Token tagging of elementary science exam questions: each word "
            "of the question is tagged essential or non-essential for "
            "choosing the right answer option, as crowd workers annotated "
            "it (about a third are essential). The Essential Terms data as "
            "converted by Natural Instructions (subtask 044)" + _FROM +
            ".")),
    "multiemo-en": dict(
        kind="classification", source="bigbench",
        parse=_bb("multiemo/all_sentence_en/task.json", parse_scores,
                  {k: k for k in _SENTIMENT}, _whole),
        labels=_SENTIMENT,
        title="MultiEmo review sentences: negative/neutral/ambivalent/"
              "positive",
        description=(
            "Sentiment of single sentences from consumer reviews (hotels, "
            "medicine, products, university courses): negative, neutral, "
            "ambivalent or positive. Polish reviews labelled by people "
            "(PolEmo 2.0) and machine-translated into English (MultiEmo, "
            "all_sentence_en)" + _FROM + ".")),
    "vitaminc": dict(
        kind="classification", source="bigbench",
        parse=_bb("vitaminc_fact_verification/task.json", parse_scores,
                  {"True": "supported", "False": "refuted",
                   "Neither": "not-enough-info"}, _vitaminc),
        labels=("supported", "refuted", "not-enough-info"),
        title="VitaminC: Wikipedia evidence vs claim (3-way)",
        description=(
            "Fact verification with contrastive evidence: the input is a "
            "Wikipedia sentence (titled by its page) and a claim, the "
            "output whether the evidence supports or refutes the claim or "
            "says neither. Claims and revisions were written by people "
            "from real Wikipedia edits; VitaminC" + _FROM + ".")),
    "fever-claims": dict(
        kind="classification", source="bigbench",
        parse=_bb("fact_checker/fever/task.json", parse_scores,
                  {"true": "true", "false": "false"}, _fever),
        labels=("false", "true"),
        title="FEVER claims true/false, without evidence",
        description=(
            "Fact checking from world knowledge alone: the input is a "
            "one-sentence claim about a Wikipedia entity written by "
            "annotators, the output whether it is true or false (no "
            "evidence is given). FEVER claims from fact_checker/fever" +
            _FROM + "; balanced.")),
    "snips-intent": dict(
        kind="classification", source="bigbench",
        parse=_bb("intent_recognition/task.json", parse_scores,
                  {k: k for k in _INTENTS}, _after("Utterance:")),
        labels=_INTENTS,
        title="SNIPS voice-assistant intents (7 classes)",
        description=(
            "Intent detection: the input is a voice-assistant request "
            "(\"add Sabrina Salerno to the grime instrumentals playlist\"), "
            "the output one of 7 intents such as add_to_playlist or "
            "get_weather. The Snips NLU benchmark sample of BIG-bench's "
            "intent_recognition" + _FROM + " (693 utterances, a small "
            "task).")),
    "presup-nli": dict(
        kind="classification", source="bigbench",
        parse=_bb("presuppositions_as_nli/task.json", parse_scores,
                  {k: k for k in _NLI}, _presupposition),
        labels=_NLI,
        title="NOPE presuppositions as NLI (3-way)",
        description=(
            "Natural language inference on naturally occurring "
            "presuppositions: the input is a corpus sentence with a "
            "presupposition trigger (often negated or embedded) and a "
            "hypothesis, the output entailment, neutral or contradiction "
            "as judged by people. NOPE, presuppositions_as_nli" + _FROM +
            " (735 pairs, a small task).")),
    "talkdown": dict(
        kind="classification", source="bigbench",
        parse=_bb("talkdown/test_data.jsonl", parse_talkdown),
        labels=("not-condescending", "condescending"),
        title="TalkDown: is a Reddit reply condescending?",
        description=(
            "Condescension detection: the input is a Reddit comment, the "
            "output whether it is condescending, as labelled by crowd "
            "workers (balanced). The TalkDown sample (652 comments, a small "
            "task) in talkdown/test_data.jsonl" + _FROM + ".")),
    "mctaco-temporal": dict(
        kind="classification", source="bigbench",
        parse=_bb(f"{_NI}018_mctaco_temporal_reasoning_presence/task.json",
                  parse_yes_no, "non-temporal", "temporal", _mctaco),
        labels=("temporal", "non-temporal"), metric="f1",
        title="MC-TACO: does a question need temporal reasoning?",
        description=(
            "Whether a question about a sentence involves temporal "
            "commonsense (duration, ordering, frequency, typical time, "
            "stationarity): the input is the question and the sentence, "
            "the output temporal or non-temporal (about 13%, so the metric "
            "is the F1 of non-temporal). MC-TACO as converted by Natural "
            "Instructions (subtask 018)" + _FROM + ".")),
    "mctaco-explicit": dict(
        kind="classification", source="bigbench",
        parse=_bb(f"{_NI}020_mctaco_span_based_question/task.json",
                  parse_yes_no, "implicit", "explicit", _mctaco),
        labels=("implicit", "explicit"), metric="f1",
        title="MC-TACO: does the sentence state the answer explicitly?",
        description=(
            "Whether a sentence explicitly contains the answer to a "
            "temporal question about it (rather than leaving it to "
            "commonsense): the input is the question and the sentence, the "
            "output explicit (about 8%, so the metric is its F1) or "
            "implicit. MC-TACO as converted by Natural Instructions "
            "(subtask 020)" + _FROM + ".")),
    "multirc-correct": dict(
        kind="classification", source="bigbench",
        parse=_bb(f"{_NI}056_multirc_classify_correct_answer/task.json",
                  parse_yes_no, "bad", "good",
                  lambda t: _multirc(t, "Correct Answer")),
        labels=("bad", "good"),
        title="MultiRC: is a correct answer a good one?",
        description=(
            "Judging answers written by crowd workers: the input is a "
            "question with a correct answer and a multi-sentence "
            "paragraph, the output whether the answer is good (correct and "
            "complete) or bad. MultiRC as converted by Natural Instructions "
            "(subtask 056)" + _FROM + ".")),
    "multirc-incorrect": dict(
        kind="classification", source="bigbench",
        parse=_bb(f"{_NI}057_multirc_classify_incorrect_answer/task.json",
                  parse_yes_no, "bad", "good",
                  lambda t: _multirc(t, "Incorrect Answer")),
        labels=("bad", "good"),
        title="MultiRC: is an incorrect answer a good distractor?",
        description=(
            "Judging distractors: the input is a question with an "
            "incorrect answer and a multi-sentence paragraph, the output "
            "whether the answer is a good incorrect answer (plausible, "
            "related to the paragraph, yet wrong) or a bad one. MultiRC as "
            "converted by Natural Instructions (subtask 057)" + _FROM +
            ".")),
}

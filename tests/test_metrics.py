"""Tests for taskemb_jax.metrics against sklearn/scipy and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from taskemb_jax import metrics

# ----------------------------------------------------------------------------
# Classification.


def test_confusion_matrix_hand_case():
  pred = np.array([0, 1, 1, 2, 0])
  gold = np.array([0, 1, 2, 2, 1])
  cm = metrics.confusion_matrix(pred, gold, 3)
  np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 0], [0, 1, 1]])
  assert cm.dtype == np.float64
  weighted = metrics.confusion_matrix(pred, gold, 3, weights=[1, 2, 0, 0.5, 3])
  np.testing.assert_array_equal(weighted, [[1, 0, 0], [3, 2, 0], [0, 0, 0.5]])


def test_confusion_matrix_rejects_out_of_range_ids():
  with pytest.raises(ValueError):
    metrics.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_classification_metrics_hand_binary_case():
  # gold 1 1 1 0 0 ; pred 1 0 1 1 0 -> tp=2 fp=1 fn=1 tn=1.
  cm = metrics.confusion_matrix(np.array([1, 0, 1, 1, 0]),
                                np.array([1, 1, 1, 0, 0]), 2)
  out = metrics.classification_metrics(cm)
  assert out["accuracy"] == pytest.approx(3 / 5)
  assert out["f1"] == pytest.approx(2 / 3)  # P = R = 2/3.
  assert out["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
  # (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 1 / sqrt(3*3*2*2).
  assert out["mcc"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_classification_metrics_match_sklearn(num_classes):
  rng = np.random.default_rng(num_classes)
  for _ in range(20):
    n = int(rng.integers(5, 60))
    gold = rng.integers(0, num_classes, n)
    # Correlated predictions so MCC and F1 are not all near zero.
    pred = np.where(rng.random(n) < 0.5, gold, rng.integers(0, num_classes, n))
    out = metrics.classification_metrics(
        metrics.confusion_matrix(pred, gold, num_classes))
    average = "binary" if num_classes == 2 else "macro"
    assert out["accuracy"] == pytest.approx(
        sklearn.metrics.accuracy_score(gold, pred))
    assert out["f1"] == pytest.approx(sklearn.metrics.f1_score(
        gold, pred, average=average, zero_division=0))
    assert out["macro_f1"] == pytest.approx(sklearn.metrics.f1_score(
        gold, pred, average="macro", zero_division=0))
    assert out["mcc"] == pytest.approx(
        sklearn.metrics.matthews_corrcoef(gold, pred), abs=1e-12)


def test_classification_metrics_degenerate_cases():
  # Everything predicted as class 0: MCC undefined -> 0, binary F1 of 1 -> 0.
  cm = metrics.confusion_matrix(np.zeros(4, int), np.array([0, 0, 1, 1]), 2)
  out = metrics.classification_metrics(cm)
  assert out == {"accuracy": 0.5, "f1": 0.0, "macro_f1": pytest.approx(1 / 3),
                 "mcc": 0.0}
  # A class absent from gold and predictions does not dilute macro-F1.
  cm = metrics.confusion_matrix(np.array([0, 1]), np.array([0, 1]), 4)
  assert metrics.classification_metrics(cm)["macro_f1"] == 1.0
  with pytest.raises(ValueError):
    metrics.classification_metrics(np.zeros((3, 3)))


# ----------------------------------------------------------------------------
# Regression.


def test_average_ranks_match_scipy():
  x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
  np.testing.assert_array_equal(metrics.average_ranks(x),
                                scipy.stats.rankdata(x))


def test_regression_metrics_match_scipy_with_ties():
  rng = np.random.default_rng(0)
  for _ in range(20):
    n = int(rng.integers(3, 40))
    gold = rng.integers(0, 5, n).astype(float)  # Many ties.
    pred = gold + rng.integers(-2, 3, n)
    if np.all(gold == gold[0]) or np.all(pred == pred[0]):
      continue
    out = metrics.regression_metrics(pred, gold)
    assert out["pearson"] == pytest.approx(scipy.stats.pearsonr(pred, gold)[0])
    assert out["spearman"] == pytest.approx(
        scipy.stats.spearmanr(pred, gold)[0])
    assert out["mse"] == pytest.approx(np.mean((pred - gold) ** 2))


def test_regression_metrics_hand_case_and_constant_input():
  out = metrics.regression_metrics(np.array([1.0, 2.0, 3.0]),
                                   np.array([1.0, 3.0, 2.0]))
  assert out["pearson"] == pytest.approx(0.5)
  assert out["spearman"] == pytest.approx(0.5)
  assert out["mse"] == pytest.approx(2 / 3)
  out = metrics.regression_metrics(np.full(4, 0.1), np.array([1.0, 2, 3, 4]))
  assert out["pearson"] == 0.0 and out["spearman"] == 0.0
  assert out["mse"] == pytest.approx(np.mean((0.1 - np.arange(1, 5)) ** 2))


# ----------------------------------------------------------------------------
# SQuAD.


def test_normalize_answer():
  assert metrics.normalize_answer("  The  Cat's, hat!  ") == "cats hat"
  assert metrics.normalize_answer("An apple a day") == "apple day"
  assert metrics.normalize_answer("theatre") == "theatre"  # Whole words only.


def test_squad_em_f1_hand_cases():
  # "the cat sat" -> "cat sat"; gold "cat sat on": P = 1, R = 2/3, F1 = 0.8.
  assert metrics.exact_match_score("The Cat sat", ["cat sat on"]) == 0.0
  assert metrics.f1_score("The Cat sat", ["cat sat on"]) == pytest.approx(0.8)
  # Max over golds; punctuation and articles ignored for EM.
  assert metrics.exact_match_score("the Eiffel Tower.", ["Paris", "Eiffel tower"]) == 1.0
  assert metrics.f1_score("in Paris France", ["Paris", "France"]) == pytest.approx(0.5)
  # Tokens count with multiplicity: common = {x: 1, y: 1}, P = R = 2/3.
  assert metrics.f1_score("x x y", ["x y y"]) == pytest.approx(2 / 3)
  assert metrics.f1_score("dog", ["cat"]) == 0.0


def test_squad_no_answer():
  assert metrics.exact_match_score("", []) == 1.0
  assert metrics.f1_score("", []) == 1.0
  assert metrics.exact_match_score("cat", []) == 0.0
  assert metrics.f1_score("cat", []) == 0.0
  assert metrics.f1_score("", ["cat"]) == 0.0
  assert metrics.f1_score("the", []) == 1.0  # Normalises to "".


def test_squad_metrics_aggregates_in_percent():
  references = {"q1": ["cat sat on"], "q2": ["Paris"], "q3": [], "q4": []}
  predictions = {"q1": "The Cat sat", "q2": "paris", "q3": "", "q4": "dog",
                 "extra": "ignored"}
  out = metrics.squad_metrics(predictions, references)
  assert out["exact_match"] == pytest.approx(100 * 2 / 4)
  assert out["f1"] == pytest.approx(100 * (0.8 + 1 + 1 + 0) / 4)
  assert out["has_ans_exact"] == pytest.approx(50.0)
  assert out["has_ans_f1"] == pytest.approx(90.0)
  assert out["no_ans_exact"] == pytest.approx(50.0)
  assert out["no_ans_f1"] == pytest.approx(50.0)
  only_answerable = metrics.squad_metrics({"q1": "cat sat on"},
                                          {"q1": ["cat sat on"], "q2": ["x"]})
  assert only_answerable == {"exact_match": 50.0, "f1": 50.0}  # q2 missing.


# ----------------------------------------------------------------------------
# Sequence labelling.


def test_get_entities_iob2_and_iob1():
  tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O"]
  assert metrics.get_entities(tags) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6)]
  # IOB1 / ill-formed: an I- after O or after another type starts a chunk.
  tags = ["I-PER", "I-PER", "I-LOC", "O", "I-ORG"]
  assert metrics.get_entities(tags) == [("PER", 0, 2), ("LOC", 2, 3), ("ORG", 4, 5)]
  # Type change inside B- I- splits the chunk.
  assert metrics.get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 2)]


def test_get_entities_bioes_and_bilou():
  tags = ["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC", "O", "B-ORG", "E-ORG"]
  assert metrics.get_entities(tags) == [
      ("PER", 0, 1), ("LOC", 1, 4), ("LOC", 4, 5), ("ORG", 6, 8)]
  bilou = ["U-PER", "B-LOC", "I-LOC", "L-LOC", "O"]
  assert metrics.get_entities(bilou) == [("PER", 0, 1), ("LOC", 1, 4)]


def test_get_entities_plain_tags():
  assert metrics.get_entities(["NN", "NN", "VB", "O", "NN", "-LRB-"]) == [
      ("NN", 0, 2), ("VB", 2, 3), ("NN", 4, 5), ("-LRB-", 5, 6)]


def test_tagging_metrics_span_scores():
  gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O"]]
  pred = [["B-PER", "I-PER", "O", "B-ORG"],  # PER right, LOC typed as ORG.
          ["B-ORG", "I-ORG", "O", "O"]]      # ORG boundary wrong.
  out = metrics.tagging_metrics(pred, gold)
  assert out["accuracy"] == pytest.approx(6 / 8)
  # Gold spans 3, predicted 3, correct 1.
  assert out["span_precision"] == pytest.approx(1 / 3)
  assert out["span_recall"] == pytest.approx(1 / 3)
  assert out["span_f1"] == pytest.approx(1 / 3)
  # An I- tag starting a predicted entity matches a gold B- entity (conlleval).
  out = metrics.tagging_metrics([["I-PER", "I-PER", "O"]],
                                [["B-PER", "I-PER", "B-LOC"]])
  assert out["span_precision"] == 1.0
  assert out["span_recall"] == pytest.approx(0.5)
  assert out["span_f1"] == pytest.approx(2 / 3)


def test_tagging_metrics_bioes_and_no_spans():
  gold = [["S-PER", "O", "B-LOC", "E-LOC"]]
  pred = [["S-PER", "O", "B-LOC", "I-LOC"]]  # Still LOC 2..4 by conlleval.
  out = metrics.tagging_metrics(pred, gold)
  assert out["accuracy"] == pytest.approx(3 / 4)
  assert out["span_f1"] == 1.0
  out = metrics.tagging_metrics([["O", "O"]], [["O", "B-X"]])
  assert out["span_precision"] == 0.0 and out["span_recall"] == 0.0
  assert out["span_f1"] == 0.0


def test_tagging_metrics_plain_tags_report_accuracy_only():
  out = metrics.tagging_metrics([["NN", "VB", "DT"], ["NN"]],
                                [["NN", "NN", "DT"], ["JJ"]])
  assert out == {"accuracy": pytest.approx(2 / 4)}
  with pytest.raises(ValueError):
    metrics.tagging_metrics([["NN"]], [["NN", "VB"]])

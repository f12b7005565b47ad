"""What transfers between classes, and whether large sources help: hand-worked
matrices."""

import warnings

import pytest

from taskemb_jax import report


def cell(mean, gain):
  return {"mean": mean, "std": 0.0, "runs": [mean], "gain": gain}


# Two classification targets (c1, c2) and a QA target (q1); sources of all
# three classes. Gains are relative to each target's baseline.
MATRIX = {
    "targets": ["c1", "c2", "q1"],
    "pairs": {
        "c1": {"c2": cell(0.80, 0.10), "q1": cell(0.85, 0.20),
               "t1": cell(0.60, -0.20)},
        "c2": {"c1": cell(0.70, 0.05), "q1": cell(0.60, -0.10),
               "t1": cell(0.66, 0.00)},
        "q1": {"c1": cell(50.0, -0.10), "c2": cell(60.0, 0.20),
               "t1": cell(40.0, -0.30), "ghost": cell(99.0, 0.9)},
    },
}
FAMILY = {"c1": "classification", "c2": "classification", "q1": "qa",
          "t1": "tagging"}


def test_class_gains_by_hand():
  got = report.class_gains(MATRIX, FAMILY)
  # classification targets <- classification sources: c1<-c2 (+0.10),
  # c2<-c1 (+0.05); c2's best is c1 (0.70 > 0.66 > 0.60).
  cc = got[("classification", "classification")]
  assert cc["pairs"] == 2 and cc["mean_gain"] == pytest.approx(0.075)
  assert cc["positive"] == 1.0 and cc["best_of"] == 1
  # <- qa: c1<-q1 (+0.20, c1's best), c2<-q1 (-0.10).
  cq = got[("classification", "qa")]
  assert cq["pairs"] == 2 and cq["mean_gain"] == pytest.approx(0.05)
  assert cq["positive"] == 0.5 and cq["best_of"] == 1
  # <- tagging: -0.20 and 0.00 (zero is not a positive gain).
  ct = got[("classification", "tagging")]
  assert ct["mean_gain"] == pytest.approx(-0.10) and ct["positive"] == 0.0
  assert ct["best_of"] == 0
  # The QA target: "ghost" is not a known task, so c2 is its best source.
  assert got[("qa", "classification")] == {
      "pairs": 2, "mean_gain": pytest.approx(0.05), "positive": 0.5,
      "best_of": 1}
  assert got[("qa", "tagging")]["best_of"] == 0
  assert sum(v["best_of"] for v in got.values()) == 3  # One per target.


def test_size_effect_by_hand():
  sizes = {"c1": 100, "c2": 1000, "q1": 10000, "t1": 10}
  got = report.size_effect(MATRIX, sizes)
  # c1: sizes (c2 1000, q1 10000, t1 10), measured (0.80, 0.85, 0.60): the
  # same order -> +1; the largest source (q1) is the best.
  assert got["c1"]["spearman"] == pytest.approx(1.0)
  assert (got["c1"]["largest"], got["c1"]["rank_of_largest"]) == ("q1", 1)
  # c2: sizes (c1 100, q1 10000, t1 10), measured (0.70, 0.60, 0.66):
  # ranks (2, 3, 1) vs (3, 1, 2) -> 1 - 6 * (1 + 4 + 1) / 24 = -0.5.
  assert got["c2"]["spearman"] == pytest.approx(-0.5)
  assert got["c2"]["rank_of_largest"] == 3
  # q1: ghost has no size and is left out.
  assert got["q1"]["sources"] == 3 and got["q1"]["largest"] == "c2"
  # Unknown sizes (a local task's may be None or NaN) are left out too.
  got = report.size_effect(MATRIX, {**sizes, "q1": None, "t1": float("nan")})
  assert "c1" not in got  # One source of known size left: no correlation.
  assert got["q1"]["sources"] == 2 and got["q1"]["spearman"] == 1.0


def test_findings_markdown_lists_every_class_pair_and_target():
  entries = {n: {"family": f, "size": 10 ** (i + 1)}
             for i, (n, f) in enumerate(FAMILY.items())}
  md = report.findings_markdown(MATRIX, entries)
  assert "| classification | qa | 2 | +5.0% | 50% | 1 |" in md
  assert "| c1 |" in md and "| q1 |" in md and "| mean |" in md


def test_a_target_whose_sources_all_tie_has_no_best_source():
  """q1's runs all measured 32.4 (e.g. every run predicts "no answer"): it
  counts in no class pair's gains or best sources, nor in the size effect;
  c1 and c2 count as before."""
  tied = {"targets": MATRIX["targets"], "pairs": dict(
      MATRIX["pairs"], q1={s: cell(32.4, 0.0) for s in ("c1", "c2", "t1")})}
  got = report.class_gains(tied, FAMILY)
  assert not any(t == "qa" for t, _ in got)
  assert got == {k: v for k, v in report.class_gains(MATRIX, FAMILY).items()
                 if k[0] != "qa"}
  sizes = {"c1": 100, "c2": 1000, "q1": 10000, "t1": 10}
  assert sorted(report.size_effect(tied, sizes)) == ["c1", "c2"]


def test_gain_figure_fits_long_task_names(tmp_path):
  """Tasks given as format:path have long names; the figure shortens them
  and makes room, so matplotlib lays it out without a warning."""
  long = "/tmp/pytest-of-root/pytest-3/test_library_sweep_evaluate_re0/"
  sources = [f"{k}:{long}{k}" for k in ("classification", "tagging")]
  matrix = {"targets": sources, "sources": sources, "regime": "LIMITED",
            "pairs": {t: {s: {"gain": 0.1} for s in sources if s != t}
                      for t in sources}}
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    report.plot_gains(matrix, str(tmp_path / "gain.png"))
  label = report.short_label(sources[0])
  assert label == "classification:…0/classification" and len(label) == 32
  assert report.short_label("mnli") == "mnli"

"""Best-run selection: reproduces the published Pythia best runs (deviations.md D61); TinyMem scores;
the utility definitions that score (deviations.md D18).

Comparison of the selection code with ``best_pythia_unlearning_runs.csv`` (also in docs/analysis.md):

* verified rule (candidates ending below 10 % memorized when any exist, min of Δmem + Δppl, +100 when
  memorization did not drop): **all 80 rows / 64 (model, step, method) cells match**.
* the notebook's plain minimum-score rule (no 10 % restriction) differs in 24 cells, listed in
  ``PLAIN_RULE_DIFFERS``; in each one the published row is the best run *below 10 %* and the plain
  rule picks a run that keeps ≥ 10 % memorized. A known anomaly of the published table, 2.8B step 36000 Durable
  (published ratio 1e-3: 0.59 %, ppl 97.7, score +1.906; plain rule: ratio 1e-4, 10.30 %, ppl 29.5,
  score −0.454), is one of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from memlab.analysis import reference_csv as rc
from memlab.analysis import selection as sel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-results"
ALL, BEST = SHARED / "all_pythia_unlearning_runs.csv", SHARED / "best_pythia_unlearning_runs.csv"
needs_csv = pytest.mark.skipif(
    not (ALL.exists() and BEST.exists()), reason="reference CSVs missing"
)
M69, M28 = "EleutherAI/pythia-6.9b-deduped", "EleutherAI/pythia-2.8b-deduped"
PLAIN_RULE_DIFFERS = {
    (M69, 36000, "durable_agg"), (M69, 72000, "durable"), (M69, 72000, "durable_agg"),
    (M69, 108000, "durable"), (M69, 108000, "durable_agg"), (M69, 108000, "random"),
    (M69, 108000, "act"), (M69, 143000, "durable"), (M69, 143000, "durable_agg"),
    (M69, 143000, "random"), (M69, 143000, "random_greedy"), (M69, 143000, "act"),
    (M28, 36000, "durable"), (M28, 72000, "durable_agg"), (M28, 72000, "random"),
    (M28, 72000, "act"), (M28, 108000, "durable"), (M28, 108000, "durable_agg"),
    (M28, 108000, "random"), (M28, 108000, "hc"), (M28, 143000, "durable"),
    (M28, 143000, "durable_agg"), (M28, 143000, "random"), (M28, 143000, "act"),
}  # fmt: skip


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return rc.read_reference_pythia(ALL)


def _compare(runs: pd.DataFrame, criterion: sel.Criterion) -> pd.DataFrame:
    best = sel.select_best(runs, criterion)
    return rc.compare_best(rc.to_reference(best, "pythia_best"), rc.read_csv(BEST))


@needs_csv
def test_verified_rule_reproduces_every_published_best_row(runs):
    assert len(runs) == 1208  # 8 (model, step) blocks x 151 runs (+ 8 base rows)
    comparison = _compare(runs, sel.PYTHIA)
    assert len(comparison) == 64
    assert comparison["match"].all(), rc.differing(comparison)
    assert sum(len(r) for r in comparison["reference"]) == 80  # slim ties kept (x3 per cell)


@needs_csv
def test_plain_min_score_rule_differs_exactly_where_documented(runs):
    plain = dataclasses.replace(sel.PYTHIA, candidate_mem_below=None)
    diffs = {(m, int(s), meth) for m, s, meth in rc.differing(_compare(runs, plain))}
    assert diffs == PLAIN_RULE_DIFFERS
    assert (M28, 36000, "durable") in diffs  # the published table's known anomaly


@needs_csv
def test_balanced_subnet_wins_every_pythia_cell(runs):
    best = sel.select_best(runs, sel.PYTHIA)
    winners = best.loc[
        best.groupby(["model.name", "model.revision"])["score"].idxmin(), "unlearn.method"
    ]
    assert (winners == "balanced_subnet").all() and len(winners) == 8


def _tiny(**after) -> dict:
    row = {"unlearn.method": "m", "ckpt": "c", "before/mem/perc": 40.0, "after/mem/perc": 40.0,
           "run/status": "done"}  # fmt: skip
    for d in ("7", "2", "3", "4", "5"):
        row[f"before/util/acc/{d}"] = 90.0
        row[f"after/util/acc/{d}"] = 90.0
    row.update(after)
    return row


def test_math_score_is_mem_change_minus_mean_accuracy_change():
    df = pd.DataFrame([_tiny(**{"after/mem/perc": 10.0, "after/util/acc/7": 81.0})])
    scored = sel.score_runs(df, sel.MATH)
    assert scored["score"].iloc[0] == pytest.approx(-0.75 - (-0.1 / 5))
    assert sel.score_runs(pd.DataFrame([_tiny()]), sel.MATH)["score"].iloc[0] == 0.0  # no +100


def test_pythia_penalty_and_ties():
    rows = [
        {"unlearn.method": "a", "before/mem/perc": 50.0, "after/mem/perc": 50.0,
         "before/util/ppl": 20.0, "after/util/ppl": 19.0},
        {"unlearn.method": "a", "before/mem/perc": 50.0, "after/mem/perc": 40.0,
         "before/util/ppl": 20.0, "after/util/ppl": 30.0},
        {"unlearn.method": "a", "before/mem/perc": 50.0, "after/mem/perc": 40.0,
         "before/util/ppl": 20.0, "after/util/ppl": 30.0, "unlearn.epochs": 10},
    ]  # fmt: skip
    best = sel.select_best(pd.DataFrame(rows), sel.PYTHIA)
    assert list(best.index) == [1, 2]  # no-drop run penalised; the tie is kept
    assert best["score"].iloc[0] == pytest.approx(-0.2 + 0.5)


def test_settings_from_report_config():
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "report.yaml")
    settings = sel.settings_from_config(OmegaConf.to_container(cfg.settings))
    by_name = {s.name: s for s in settings}
    assert by_name["pythia"].criterion.candidate_mem_below == 10.0
    assert by_name["pythia"].holds({"model.name": M28})
    assert by_name["math"].holds({"data.builder": "math"}) and not by_name["math"].holds({})


def _two_definitions(method: str, ref_after: float, fixed_after: float) -> dict:
    """A math run whose accuracy drop differs between the two definitions."""
    row = _tiny(**{"unlearn.method": method, "after/mem/perc": 20.0})
    for d in ("7", "2", "3", "4", "5"):
        row[f"before/util/acc_ref/{d}"] = 80.0
        row[f"after/util/acc_ref/{d}"] = ref_after
        row[f"after/util/acc/{d}"] = fixed_after
    return row


def test_reference_definitions_score_by_default_and_corrected_ones_are_selectable():
    """Two runs of one method, equal memorization: the reference's accuracy prefers run 0, the
    corrected accuracy prefers run 1; each definition picks its own winner."""
    df = pd.DataFrame([_two_definitions("m", 80.0, 45.0), _two_definitions("m", 40.0, 90.0)])
    assert sel.MATH.definitions == "reference"
    assert list(sel.select_best(df, sel.MATH).index) == [0]
    corrected = dataclasses.replace(sel.MATH, definitions="corrected")
    assert list(sel.select_best(df, corrected).index) == [1]
    view = sel.in_definitions(df, "reference")
    assert list(view["after/util/acc/7"]) == [80.0, 40.0]  # tables/CSVs show the scored values
    setting = sel.Setting("math", sel.MATH)
    assert "util/acc_ref" in sel.scoring_line(setting, df)
    assert "corrected" in sel.scoring_line(sel.Setting("math", corrected), df)
    with pytest.raises(sel.ConfigError):
        dataclasses.replace(sel.MATH, definitions="padded")

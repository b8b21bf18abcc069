"""core/search/significance.py: group summaries by hand, Welch's interval and p-value against scipy,
McNemar's exact test on constructed correctness vectors, the choice of test, the verdicts and the JSON."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from core.errors import DigitLabError
from core.search.significance import (Comparison, compare, mcnemar, per_digit_correctness, summarize, verdict,
                                      welch)

A3 = [0.9900, 0.9912, 0.9894]   # three seeds of config A (fractions, as the store keeps them)
B3 = [0.9921, 0.9930, 0.9917]   # three seeds of config B


def pair(n: int, b01: int, b10: int, both_wrong: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of runs A and B on n digits: b01 only B right, b10 only A right, both_wrong neither."""
    a, b = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    a[:b01] = False
    b[b01:b01 + b10] = False
    a[b01 + b10:b01 + b10 + both_wrong] = b[b01 + b10:b01 + b10 + both_wrong] = False
    return a, b


# ------------------------------------------------------------------ summaries
def test_summary_matches_hand_computed_values():
    s = summarize([0.98, 0.99, 1.00, None, math.nan])  # a run without a test accuracy is left out
    assert s.n == 3
    assert s.mean == pytest.approx(0.99)
    assert s.std == pytest.approx(0.01)                      # sqrt((0.01² + 0 + 0.01²) / (3 - 1))
    assert s.sem == pytest.approx(0.01 / math.sqrt(3))
    assert (s.min, s.max) == (0.98, 1.00)
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)                # the t interval of the mean
    assert (s.ci_low, s.ci_high) == pytest.approx((0.99 - half, 0.99 + half))
    assert (s.ci_low, s.ci_high) == pytest.approx(stats.t.interval(0.95, 2, loc=0.99, scale=s.sem))


def test_summary_of_one_run_has_no_spread_and_of_none_no_mean():
    one = summarize([0.97])
    assert (one.n, one.mean) == (1, 0.97) and math.isnan(one.std) and math.isnan(one.sem)
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)
    assert summarize([0.97]).to_dict()["std"] is None  # JSON has no NaN
    flat = summarize([0.97, 0.97])
    assert (flat.std, flat.ci_low, flat.ci_high) == (0.0, 0.97, 0.97)


# ------------------------------------------------------------------ Welch
def test_welch_matches_scipy_and_the_welch_formula():
    a, b = [99.00, 99.12, 98.94, 99.05], [99.21, 99.30, 99.17]
    r = welch(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(confidence_level=0.95)
    assert r.test == "welch"
    assert r.difference == pytest.approx(np.mean(b) - np.mean(a))  # B - A
    assert (r.ci_low, r.ci_high, r.p_value, r.df) == pytest.approx((ci.low, ci.high, ref.pvalue, ref.df))
    # the same interval from its parts: Welch's standard error, Welch-Satterthwaite df, a t quantile
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (r.ci_low, r.ci_high, r.df) == pytest.approx((r.difference - half, r.difference + half, df))


def test_welch_interval_level_is_passed_to_scipy():
    r90, r99 = welch(A3, B3, level=0.90), welch(A3, B3, level=0.99)
    ref = stats.ttest_ind(B3, A3, equal_var=False)
    assert (r90.ci_low, r90.ci_high) == pytest.approx(tuple(ref.confidence_interval(0.90)))
    assert r99.ci_low < r90.ci_low and r99.ci_high > r90.ci_high


def test_welch_interval_excludes_zero_exactly_when_p_is_below_five_percent():
    rng = np.random.default_rng(7)
    for _ in range(300):
        a, b = rng.normal(0, 1, rng.integers(2, 6)), rng.normal(rng.uniform(0, 3), 1, rng.integers(2, 6))
        r = welch(a, b)
        assert (r.ci_low > 0 or r.ci_high < 0) == (r.p_value < 0.05)


def test_welch_needs_two_values_in_each_group():
    with pytest.raises(ValueError, match="at least 2 values"):
        welch([0.99], [0.98, 0.97])


# ------------------------------------------------------------------ McNemar
def test_mcnemar_counts_discordant_digits_and_has_the_known_exact_p():
    a, b = pair(1000, b01=8, b10=1, both_wrong=5)
    r = mcnemar(a, b)
    assert (r.test, r.n, r.b01, r.b10) == ("mcnemar", 1000, 8, 1)
    assert r.difference == pytest.approx((8 - 1) / 1000) == pytest.approx(b.mean() - a.mean())
    assert r.p_value == pytest.approx(20 / 512)  # 2 · P(X ≤ 1), X ~ Binomial(9, 1/2): 2 · (1 + 9) / 2⁹
    assert r.ci_low > 0


def test_mcnemar_five_to_nothing_is_not_enough():
    r = mcnemar(*pair(100, b01=5, b10=0))
    assert r.p_value == pytest.approx(2 / 32)  # 2 · (1/2)⁵: every discordant digit for B, yet p > 0.05
    assert r.ci_low < 0 < r.ci_high  # so the interval keeps 0 too


def test_mcnemar_of_runs_that_agree_on_every_digit():
    for a, b in (pair(500, 0, 0), pair(500, 0, 0, both_wrong=12)):
        r = mcnemar(a, b)
        assert (r.b01, r.b10, r.difference, r.ci_low, r.ci_high, r.p_value) == (0, 0, 0.0, 0.0, 0.0, 1.0)


def test_mcnemar_interval_is_clopper_pearson_on_the_discordant_share_scaled_to_the_test_set():
    n, b01, b10 = 10_000, 80, 50
    r = mcnemar(*pair(n, b01, b10, both_wrong=60))
    d = b01 + b10
    low, high = stats.beta.ppf(0.025, b01, d - b01 + 1), stats.beta.ppf(0.975, b01 + 1, d - b01)
    assert (r.ci_low, r.ci_high) == pytest.approx((d / n * (2 * low - 1), d / n * (2 * high - 1)))
    assert r.p_value == pytest.approx(stats.binomtest(b01, d, 0.5).pvalue)
    assert r.ci_low < r.difference < r.ci_high


def test_mcnemar_interval_and_exact_p_never_disagree():
    for d in range(1, 41):
        for b01 in range(d + 1):
            r = mcnemar(*pair(400, b01, d - b01))
            assert (r.ci_low > 0 or r.ci_high < 0) == (r.p_value < 0.05), (b01, d - b01)


def test_mcnemar_direction_follows_the_runs():
    forward, backward = mcnemar(*pair(1000, 30, 10)), mcnemar(*reversed(pair(1000, 30, 10)))
    assert forward.difference == -backward.difference > 0
    assert (forward.ci_low, forward.ci_high) == pytest.approx((-backward.ci_high, -backward.ci_low))
    assert forward.p_value == pytest.approx(backward.p_value)


def test_mcnemar_needs_the_same_test_digits():
    with pytest.raises(DigitLabError, match="same test digits"):
        mcnemar([True, False], [True, False, True])


def test_per_digit_correctness_from_stored_mistakes():
    assert per_digit_correctness(5, [3, 1]).tolist() == [True, False, True, False, True]
    assert per_digit_correctness(5, [3, 1], n_wrong=2).tolist() == [True, False, True, False, True]
    assert per_digit_correctness(5, [3], n_wrong=2) is None  # only the most confident mistake was kept
    with pytest.raises(ValueError, match="outside"):
        per_digit_correctness(5, [5])


# ------------------------------------------------------------------ verdicts
def test_verdicts_read_as_the_issue_says():
    assert verdict("A", "B", 0.21, 0.05, 0.37, "welch", 3, 3) == \
        "B beats A by 0.21 points (95 % CI 0.05 to 0.37; 3 seeds each)"
    assert verdict("A", "B", 0.08, -0.20, 0.36, "welch", 3, 3) == \
        "A and B are not distinguishable (difference 0.08, CI \u22120.20 to 0.36): add seeds"
    assert verdict("A", "B", -0.21, -0.37, -0.05, "welch", 3, 5) == \
        "A beats B by 0.21 points (95 % CI 0.05 to 0.37; 3 and 5 seeds)"


def test_mcnemar_verdicts_say_this_test_set_and_no_seed_noise():
    won = verdict("A", "B", 0.30, 0.07, 0.52, "mcnemar", n_digits=10_000, discordant=130)
    assert won.startswith("B beats A by 0.30 points on this test set (95 % CI 0.07 to 0.52")
    assert "seed noise is not covered" in won
    tie = verdict("A", "B", 0.10, -0.11, 0.31, "mcnemar", n_digits=10_000, discordant=110)
    assert "not distinguishable on this test set" in tie and "seed noise" in tie
    alike = verdict("A", "B", 0.0, 0.0, 0.0, "mcnemar", n_digits=10_000, discordant=0)
    assert alike == ("A and B agree on every one of the 10,000 test digits: no difference on this test set "
                     "(one run each, so seed noise is not covered): add seeds")


# ------------------------------------------------------------------ choosing the test
def test_groups_of_repeats_get_welch_in_percentage_points():
    c = compare("A", "B", A3, B3)
    ref = stats.ttest_ind(np.array(B3) * 100, np.array(A3) * 100, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (c.test, c.n_a, c.n_b, c.metric) == ("welch", 3, 3, "test_accuracy")
    assert (c.difference, c.ci_low, c.ci_high, c.p_value) == pytest.approx(
        ((np.mean(B3) - np.mean(A3)) * 100, ci.low, ci.high, ref.pvalue))
    assert c.distinguishable and c.verdict.startswith("B beats A by 0.21 points (95 % CI")
    assert c.verdict.endswith("; 3 seeds each)")


def test_two_single_runs_with_per_digit_results_get_mcnemar():
    a, b = pair(10_000, 80, 50, both_wrong=60)
    c = compare("run-a", "run-b", [a.mean()], [b.mean()], correct_a=a, correct_b=b)
    r = mcnemar(a, b)
    assert c.test == "mcnemar" and (c.n_a, c.n_b) == (1, 1)
    assert (c.difference, c.ci_low, c.ci_high, c.p_value) == pytest.approx(
        (r.difference * 100, r.ci_low * 100, r.ci_high * 100, r.p_value))
    assert "run-b beats run-a by 0.30 points on this test set" in c.verdict


def test_single_runs_without_per_digit_results_cannot_be_tested():
    c = compare("A", "B", [0.990], [0.991], correct_a=pair(10, 1, 0)[0])
    assert c.test is None and c.ci_low is c.ci_high is c.p_value is None
    assert c.difference == pytest.approx(0.1)
    assert "trained before per-digit results were stored" in c.verdict and c.verdict.endswith("add seeds")
    why = compare("A", "B", [0.990], [0.991], why_unpaired="A kept only its 2,000 most confident mistakes")
    assert "A kept only its 2,000 most confident mistakes" in why.verdict


def test_a_single_run_against_a_group_asks_for_seeds():
    c = compare("A", "B", [0.990], [0.991, 0.992, None])
    assert c.test is None and (c.n_a, c.n_b) == (1, 2)
    assert c.verdict.startswith("A has a single run and B 2 runs") and c.verdict.endswith("add seeds to A")


def test_groups_without_a_result_or_without_spread():
    empty = compare("A", "B", [None], [0.99, 0.98])
    assert empty.test is None and empty.difference is None and "A has no finished run" in empty.verdict
    flat = compare("A", "B", [0.99, 0.99], [0.98, 0.98])
    assert flat.test is None and "seed noise cannot be measured" in flat.verdict


def test_different_datasets_are_refused_naming_both():
    mnist = {"source": "mnist", "sha256": "a" * 64}
    fashion = {"source": "sample", "sha256": "b" * 64}
    with pytest.raises(DigitLabError) as error:
        compare("A", "B", A3, B3, dataset_a=mnist, dataset_b=fashion)
    assert "mnist (aaaaaaaaaaaa)" in str(error.value) and "sample (bbbbbbbbbbbb)" in str(error.value)
    assert compare("A", "B", A3, B3, dataset_a=mnist, dataset_b=dict(mnist)).test == "welch"
    assert compare("A", "B", A3, B3, dataset_a=mnist, dataset_b=None).test == "welch"  # unknown: not refused


def test_comparison_json_has_the_keys_the_cli_promises():
    c = compare("A", "B", A3, B3)
    data = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert {"a", "b", "n_a", "n_b", "metric", "difference", "ci_low", "ci_high", "p_value", "test",
            "verdict"} <= set(data)
    assert isinstance(c, Comparison) and all(isinstance(data[k], float) for k in ("difference", "p_value"))
    none = compare("A", "B", [0.99], [0.98]).to_dict()
    assert none["test"] is None and none["p_value"] is None and json.dumps(none, allow_nan=False)


def test_the_engine_imports_without_tensorflow_or_streamlit():
    code = ("import sys, core.search.significance, core.search.repeats; "
            "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'streamlit')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

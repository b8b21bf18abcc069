"""Is a difference in test accuracy real? Confidence intervals, p-values and a one-line verdict.

Two runs of the same config with different seeds differ by 0.15-0.17 points on MNIST, about as
much as many methods differ from each other, so a comparison of single numbers cannot tell a real
improvement from luck. This module says which it is, with the one test that fits the evidence:

- Groups of repeats (N >= 2 each): Welch's t interval on the runs' test accuracies. It measures
  the seed noise, so it answers "would this config beat that one if I trained it again?".
- Two single runs on the same test set, each with its per-digit correctness: McNemar's exact test
  on the digits one run got right and the other wrong. It answers only "on this test set", and it
  cannot see seed noise: another seed may reverse it.
- Anything else: no test, and a verdict that says why and what would make one possible.

Accuracies come in as fractions (0.9912, as the store keeps them); differences and intervals come
out in percentage points (0.9912 - 0.9891 is 0.21 points). The verdict is decided by the interval
excluding 0; each test's p-value comes from the same distribution as its interval, so p < 1 - level
exactly when the interval excludes 0, and the two never disagree. All distributions are scipy.stats'.

Pure functions only: nothing here reads the store, imports TensorFlow or draws.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
from scipy import stats

from core.errors import DigitLabError

LEVEL = 0.95              # the confidence level of every interval (and 1 - the p-value threshold)
POINTS = 100.0            # fraction -> percentage points
METRIC = "test_accuracy"  # what is compared: the runs' accuracy on the test split
WELCH, MCNEMAR = "welch", "mcnemar"


# ------------------------------------------------------------------ one group's numbers
@dataclass(frozen=True)
class Summary:
    """A group of values (one per run): count, mean, sample std (ddof=1), standard error, range, and
    the `level` t interval of the mean (what a ranking of configs by their mean shows).

    std, sem and the interval are NaN for a single value: one run says nothing about the spread
    between seeds.
    """
    n: int
    mean: float
    std: float
    sem: float
    min: float
    max: float
    ci_low: float = math.nan
    ci_high: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in asdict(self).items()}


def summarize(values: Iterable[float | None], level: float = LEVEL) -> Summary:
    """The Summary of `values`; None and NaN (a run without a test accuracy) are left out.

    The interval of the mean is scipy.stats.ttest_1samp(values, 0).confidence_interval(level):
    mean ± t(level, n - 1) · sem.
    """
    x = _finite(values)
    if len(x) == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    if len(x) == 1:
        return Summary(1, float(x[0]), math.nan, math.nan, float(x[0]), float(x[0]))
    if np.ptp(x) == 0:  # no spread: the interval is the value itself (scipy would warn and give NaN)
        ci_low = ci_high = float(x[0])
    else:
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
        ci_low, ci_high = float(ci.low), float(ci.high)
    return Summary(n=len(x), mean=float(np.mean(x)), std=float(np.std(x, ddof=1)),
                   sem=float(stats.sem(x, ddof=1)), min=float(np.min(x)), max=float(np.max(x)),
                   ci_low=ci_low, ci_high=ci_high)


# ------------------------------------------------------------------ the two tests
@dataclass(frozen=True)
class Outcome:
    """One test's answer, in the units its inputs came in: the difference B - A, its interval, p-value.

    For McNemar, `b01` is the number of digits A got wrong and B right, `b10` the reverse, and `n`
    the number of test digits; for Welch, `df` is the Welch-Satterthwaite degrees of freedom.
    """
    test: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    level: float
    df: float | None = None
    n: int | None = None
    b01: int | None = None
    b10: int | None = None


def welch(a_values: Iterable[float], b_values: Iterable[float], level: float = LEVEL) -> Outcome:
    """Welch's t test of mean(B) - mean(A), unequal variances, two-sided, with its `level` interval.

    Both the interval and the p-value come from one scipy.stats.ttest_ind(B, A, equal_var=False)
    result, so the interval excludes 0 exactly when p < 1 - level. Needs two values in each group
    (one value has no spread); when both groups have no spread at all, scipy returns a NaN p-value.
    """
    a, b = _finite(a_values), _finite(b_values)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t test needs at least 2 values in each group, got {len(a)} and {len(b)}")
    result = stats.ttest_ind(b, a, equal_var=False)
    ci = result.confidence_interval(confidence_level=level)
    return Outcome(WELCH, float(np.mean(b) - np.mean(a)), float(ci.low), float(ci.high),
                      float(result.pvalue), level, df=float(result.df))


def mcnemar(correct_a: Iterable[bool], correct_b: Iterable[bool], level: float = LEVEL) -> Outcome:
    """McNemar's exact test on two runs' per-digit correctness over the same test digits.

    Only the discordant digits count: b01 (A wrong, B right) and b10 (A right, B wrong). Under
    "neither run is better", each of the d = b01 + b10 discordant digits is equally likely to
    favour either run, so b01 ~ Binomial(d, 1/2): the two-sided p-value is
    scipy.stats.binomtest(b01, d, 0.5).

    The difference in accuracy B - A is (b01 - b10) / n. Its interval is the exact conditional
    one: the Clopper-Pearson interval for the share of discordant digits that favour B
    (binomtest(...).proportion_ci(method="exact")), mapped to a difference by scaling with the
    observed discordant fraction d / n. It is the inversion of the same exact test (for p = 1/2
    the two-sided p-value is twice the smaller tail), so it excludes 0 exactly when p < 1 - level.
    Like the test it treats d as fixed: near "no difference", the case a verdict hinges on, it
    matches an unconditional (Newcombe or Wald) interval for paired proportions to a few hundredths
    of a point on 10,000 digits; when one run wins nearly every discordant digit, its far end is
    narrower than theirs. Runs that agree on every digit get p = 1 and the interval [0, 0].
    """
    a, b = np.asarray(list(correct_a), dtype=bool), np.asarray(list(correct_b), dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise DigitLabError(f"McNemar's test needs the same test digits for both runs, got {a.size} and {b.size}")
    if a.size == 0:
        raise ValueError("McNemar's test needs at least one test digit")
    n, b01, b10 = int(a.size), int(np.sum(~a & b)), int(np.sum(a & ~b))
    d = b01 + b10
    if d == 0:
        return Outcome(MCNEMAR, 0.0, 0.0, 0.0, 1.0, level, n=n, b01=0, b10=0)
    result = stats.binomtest(b01, d, 0.5)
    share = result.proportion_ci(confidence_level=level, method="exact")
    scale = d / n
    return Outcome(MCNEMAR, (b01 - b10) / n, scale * (2 * share.low - 1), scale * (2 * share.high - 1),
                      float(result.pvalue), level, n=n, b01=b01, b10=b10)


def per_digit_correctness(n_test: int, wrong: Iterable[int], n_wrong: int | None = None) -> np.ndarray | None:
    """A run's correctness on each test digit (True = right) from the indices of the digits it got wrong.

    `n_wrong` is how many it got wrong in all (from its confusion matrix: n minus the diagonal).
    When fewer indices than that were stored (older runs kept only the most confident mistakes),
    the correctness is unknown: None, and McNemar's test cannot be made for this run.
    """
    idx = np.unique(np.asarray(list(wrong), dtype=int))
    if n_wrong is not None and idx.size != n_wrong:
        return None
    if idx.size and (idx[0] < 0 or idx[-1] >= n_test):
        raise ValueError(f"a misclassified index lies outside the {n_test} test digits")
    correct = np.ones(n_test, dtype=bool)
    correct[idx] = False
    return correct


# ------------------------------------------------------------------ the comparison and its verdict
@dataclass(frozen=True)
class Comparison:
    """B compared with A: what `python -m core compare A B --json` prints and Compare shows.

    `difference` (B - A), `ci_low` and `ci_high` are in percentage points of test accuracy; `test`
    is "welch", "mcnemar" or None when no test could be made (then ci_* and p_value are None
    too, and the verdict says why). `n_a` and `n_b` count the runs with a test accuracy.
    """
    a: str
    b: str
    n_a: int
    n_b: int
    metric: str
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str | None
    verdict: str
    level: float = LEVEL
    unit: str = "percentage points"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: NaN becomes None, numpy numbers become floats."""
        return {k: _json_number(v) for k, v in asdict(self).items()}

    @property
    def distinguishable(self) -> bool:
        """True when the interval excludes 0: the verdict names a winner."""
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


def verdict(a: str, b: str, difference: float, ci_low: float, ci_high: float, test: str,
            n_a: int = 1, n_b: int = 1, level: float = LEVEL, n_digits: int | None = None,
            discordant: int | None = None) -> str:
    """One plain line about B - A (in points): who wins and by how much, or that more seeds are needed.

    The winner is named only when the interval excludes 0. A McNemar verdict says "on this test
    set" and that it does not cover seed noise: it compares two single runs, not two configs.
    """
    pct = f"{level * 100:g} %"
    ci_word = "CI" if math.isclose(level, LEVEL) else f"{pct} CI"
    if test == MCNEMAR:
        scope, evidence = " on this test set", f"exact McNemar on {n_digits:,} digits" if n_digits else "exact McNemar"
        caveat = "one run each, so seed noise is not covered"
        if discordant == 0:
            digits = f"every one of the {n_digits:,} test digits" if n_digits else "every test digit"
            return f"{a} and {b} agree on {digits}: no difference{scope} ({caveat}): add seeds"
    else:
        scope = ""
        evidence = f"{n_a} seeds each" if n_a == n_b else f"{n_a} and {n_b} seeds"
        caveat = ""
    if ci_low > 0 or ci_high < 0:
        win, lose, sign = (b, a, 1) if ci_low > 0 else (a, b, -1)
        low, high = sorted((sign * ci_low, sign * ci_high))
        line = (f"{win} beats {lose} by {_pts(sign * difference)} points{scope} "
                f"({pct} CI {_pts(low)} to {_pts(high)}; {evidence})")
        return f"{line}; {caveat}" if caveat else line
    inside = f"difference {_pts(difference)}, {ci_word} {_pts(ci_low)} to {_pts(ci_high)}"
    return f"{a} and {b} are not distinguishable{scope} ({inside}{'; ' + caveat if caveat else ''}): add seeds"


def compare(a: str, b: str, a_values: Iterable[float | None], b_values: Iterable[float | None], *,
            correct_a: Iterable[bool] | None = None, correct_b: Iterable[bool] | None = None,
            dataset_a: dict | str | None = None, dataset_b: dict | str | None = None,
            why_unpaired: str | None = None, level: float = LEVEL) -> Comparison:
    """Compare B with A (test accuracies as fractions, one per run) with the test that fits.

    - N >= 2 runs each: Welch's t interval (seed noise measured).
    - One run each, with both runs' per-digit correctness: McNemar's exact test (this test set only).
    - Otherwise a Comparison without a test whose verdict says why: a group without a finished run,
      a single run against a group, or single runs without per-digit results (`why_unpaired`
      ends "A and B are single runs, and ..."; by default "at least one was trained before
      per-digit results were stored").
    Runs trained on different datasets cannot be compared: DigitLabError naming both datasets.
    `dataset_*` is a run's recorded dataset (its dict, with "sha256") or a fingerprint; None: unknown.
    """
    _same_dataset(a, b, dataset_a, dataset_b)
    xa, xb = _finite(a_values) * POINTS, _finite(b_values) * POINTS
    n_a, n_b = len(xa), len(xb)
    base = dict(a=a, b=b, n_a=n_a, n_b=n_b, metric=METRIC, level=level)

    def untested(why: str, advice: str = "") -> Comparison:
        diff = float(np.mean(xb) - np.mean(xa)) if n_a and n_b else None
        line = why if diff is None else f"{why}: no test can be made (difference {_pts(diff)} points)"
        return Comparison(**base, difference=diff, ci_low=None, ci_high=None, p_value=None, test=None,
                          verdict=f"{line}: {advice}" if advice else line)

    if not n_a or not n_b:
        empty = " and ".join(name for name, n in ((a, n_a), (b, n_b)) if not n)
        return untested(f"{empty} {'have' if not n_a and not n_b else 'has'} no finished run with a test "
                        f"accuracy: nothing to compare")
    if n_a >= 2 and n_b >= 2:
        if np.ptp(xa) == 0 and np.ptp(xb) == 0:
            return untested(f"every run of {a} and of {b} scored the same, so the seed noise cannot be measured")
        r = welch(xa, xb, level)
        return _tested(base, r, verdict(a, b, r.difference, r.ci_low, r.ci_high, WELCH, n_a, n_b, level))
    if n_a == 1 and n_b == 1:
        if correct_a is None or correct_b is None:
            why = why_unpaired or "at least one was trained before per-digit results were stored"
            return untested(f"{a} and {b} are single runs, and {why}", "add seeds")
        r = mcnemar(correct_a, correct_b, level)
        r = Outcome(**{**asdict(r), "difference": r.difference * POINTS, "ci_low": r.ci_low * POINTS,
                       "ci_high": r.ci_high * POINTS})
        return _tested(base, r, verdict(a, b, r.difference, r.ci_low, r.ci_high, MCNEMAR, 1, 1, level,
                                        n_digits=r.n, discordant=r.b01 + r.b10))
    single, group, n_group = (a, b, n_b) if n_a == 1 else (b, a, n_a)
    return untested(f"{single} has a single run and {group} {n_group} runs", f"add seeds to {single}")


def _tested(base: dict, r: Outcome, line: str) -> Comparison:
    return Comparison(**base, difference=r.difference, ci_low=r.ci_low, ci_high=r.ci_high,
                      p_value=r.p_value, test=r.test, verdict=line)


def dataset_label(dataset: dict | str | None) -> str:
    """How a verdict names a dataset: its source and the start of its fingerprint."""
    if dataset is None:
        return "an unrecorded dataset"
    if isinstance(dataset, str):
        return f"dataset {dataset[:12]}"
    source = dataset.get("source") or "dataset"
    sha = dataset.get("sha256") or ""
    return f"{source} ({sha[:12]})" if sha else str(source)


def _fingerprint(dataset: dict | str | None) -> str | None:
    if isinstance(dataset, dict):
        return dataset.get("sha256") or None
    return dataset or None


def _same_dataset(a: str, b: str, dataset_a: dict | str | None, dataset_b: dict | str | None) -> None:
    """DigitLabError when both datasets are known and differ: accuracies on different digits do not compare."""
    fa, fb = _fingerprint(dataset_a), _fingerprint(dataset_b)
    if fa and fb and fa != fb:
        raise DigitLabError(f"{a} was trained on {dataset_label(dataset_a)} and {b} on "
                            f"{dataset_label(dataset_b)}: runs on different datasets cannot be compared",
                            hint="compare runs trained on the same dataset")


def _finite(values: Iterable[float | None]) -> np.ndarray:
    """The values as floats, with None, NaN and infinities left out."""
    x = np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)
    return x[np.isfinite(x)]


def _pts(x: float) -> str:
    """A number of points with two decimals and a true minus sign ("−0.20"); never "−0.00"."""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text.replace("-", "\u2212")


def _json_number(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value

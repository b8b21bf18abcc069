"""The writers proxy's shape habits (bench/writers.py): reproducible, and doing what they say."""
from dataclasses import replace

import numpy as np

from bench.writers import REPORT_SEEDS, Style, draw, reshape, skeleton, hand


def _strokes(digit: int, style: Style) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [hand(s, style, rng) for s in skeleton(digit, style)]


def test_a_writer_draws_the_same_digit_the_same_way_every_time():
    style = Style.from_seed(REPORT_SEEDS[3])
    assert np.array_equal(draw(5, style, 2), draw(5, style, 2))
    assert not np.array_equal(draw(5, style, 2), draw(5, style, 3))


def test_without_shape_habits_a_digit_keeps_its_skeleton():
    style = replace(Style.from_seed(REPORT_SEEDS[0]), waist=0.0, warp=0.0, joins=0.0)
    strokes = _strokes(4, style)
    out = reshape(strokes, style, np.random.default_rng(1))
    # only the per-sample waist (sd 0.03) moves points, and only up or down
    assert len(out) == len(strokes)
    for a, b in zip(strokes, out):
        assert np.array_equal(a[:, 0], b[:, 0]) and np.abs(a[:, 1] - b[:, 1]).max() < 0.15


def test_a_bigger_waist_moves_the_middle_of_a_3_down():
    base = replace(Style.from_seed(REPORT_SEEDS[1]), warp=0.0, joins=0.0)
    middle = {}
    for waist in (-0.12, 0.12):
        style = replace(base, waist=waist)
        pts = np.concatenate(reshape(_strokes(3, style), style, np.random.default_rng(2)))
        inner = pts[(pts[:, 0] < 0.5) & (pts[:, 1] > 0.3) & (pts[:, 1] < 0.7)]  # the 3's waist, left of centre
        middle[waist] = float(np.median(inner[:, 1]))
    assert middle[0.12] > middle[-0.12] + 0.1


def test_loose_joins_move_later_strokes_and_change_their_ends():
    style = replace(Style.from_seed(REPORT_SEEDS[2]), four_open=True, waist=0.0, warp=0.0, joins=0.06)
    strokes = _strokes(4, style)
    out = reshape(strokes, style, np.random.default_rng(3))
    assert len(out) == 2
    assert any(len(a) != len(b) for a, b in zip(strokes, out))  # an end ran on or stopped short
    assert all(len(b) >= len(a) // 2 for a, b in zip(strokes, out))  # never more than half a stroke cut

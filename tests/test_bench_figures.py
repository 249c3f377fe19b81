"""The benchmark's comparison with a peer: the figure is the median of the rounds' own ratios."""

from __future__ import annotations

import pytest

from scripts.bench import median_ratio


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([(1000.0, 2000.0)], 0.5),
        ([(1000.0, 2000.0), (3000.0, 2000.0), (1800.0, 2000.0)], 0.9),  # odd: the middle one
        ([(1000.0, 2000.0), (1600.0, 2000.0)], 0.65),  # even: between the middle two
        # Each round's own ratio, not the ratio of the sums: a round on a slow machine counts once.
        ([(500.0, 1000.0), (4000.0, 4000.0), (3000.0, 4000.0)], 0.75),
        ([(None, 2000.0), (1000.0, None), (1000.0, 2000.0)], 0.5),  # a missing figure is left out
        ([(None, 2000.0)], None),
        ([], None),
    ],
)
def test_median_ratio(pairs: list[tuple[float | None, float | None]], expected: float | None) -> None:
    assert median_ratio(pairs) == expected

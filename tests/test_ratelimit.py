"""Send-rate limiting: exact per-second windows and back-off on ESME_RTHROTTLED."""

from __future__ import annotations

import pytest

from smsgw.ratelimit import AdaptiveRate, SlidingWindowLimiter


def drive(limiter: SlidingWindowLimiter, until: float, step: float = 0.001) -> list[float]:
    """Send whenever allowed, as a pump would; returns the send times."""
    sent, now = [], 0.0
    while now < until:
        if limiter.delay(now) == 0.0:
            limiter.record(now)
            sent.append(now)
        else:
            now += limiter.delay(now)
            continue
        now += step
    return sent


@pytest.mark.parametrize("rate", [1, 5, 15, 200, 1000])
def test_never_more_than_rate_in_any_one_second_window(rate: int) -> None:
    """Whatever the sliding one-second window, it holds at most `rate` sends."""
    sent = drive(SlidingWindowLimiter(rate), until=5.0)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 1.0) <= rate
    assert len(sent) >= rate * 4  # and it does not under-use the contract


def test_fractional_rate_spaces_sends() -> None:
    """0.5 TPS means one send per two seconds."""
    limiter = SlidingWindowLimiter(0.5)
    limiter.record(0.0)
    assert limiter.delay(1.0) == pytest.approx(1.0)
    assert limiter.delay(2.0) == 0.0


def test_throttle_halves_the_rate_and_pauses_briefly() -> None:
    """A throttle halves the rate, pauses a fraction of a second, and repeated throttles cap the pause."""
    rate = AdaptiveRate(100)
    pause = rate.throttled(10.0)
    assert rate.current == 50 and 0 < pause <= 0.5
    assert rate.delay(10.0) == pytest.approx(pause)
    for _ in range(10):
        pause = rate.throttled(20.0)
    assert pause <= rate.max_pause and rate.current >= 1


def test_successes_restore_the_configured_rate() -> None:
    """After throttling, successes creep the rate back up to the configured ceiling, no further."""
    rate = AdaptiveRate(100)
    rate.throttled(0.0)
    for _ in range(100):
        rate.succeeded()
    assert rate.current == 100

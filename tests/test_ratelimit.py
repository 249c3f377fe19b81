"""Send-rate limiting: exact per-second windows, token-bucket pacing and back-off on ESME_RTHROTTLED."""

from __future__ import annotations

import pytest

from twisted.internet.task import Clock

from carriers.smsc import TokenBucket as CarrierPolicer
from smsgw.ratelimit import AdaptiveRate, SlidingWindowLimiter, TokenBucket


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


# -- TokenBucket: the USSD lane's pacing ------------------------------------------------------


def test_bucket_allows_its_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(10.0)
    for _ in range(10):
        assert bucket.delay(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.1)
    assert bucket.delay(0.05) == pytest.approx(0.05)
    assert bucket.delay(0.1) == 0.0  # a full bucket costs 1/rate, not a sliding second


def test_bucket_refills_only_up_to_its_burst() -> None:
    bucket = TokenBucket(10.0, burst=3)
    bucket.delay(0.0)
    for _ in range(3):
        bucket.take(100.0)
    assert bucket.delay(100.0) == pytest.approx(0.1)


def test_bucket_emptied_by_a_throttle_waits_one_interval() -> None:
    bucket = TokenBucket(50.0)
    bucket.take(0.0)
    bucket.empty(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.02)


def test_bucket_emptied_with_a_pause_waits_that_long() -> None:
    bucket = TokenBucket(100.0)
    bucket.empty(0.0, pause=0.08)
    assert bucket.delay(0.0) == pytest.approx(0.08)
    assert bucket.delay(0.08) == 0.0


def test_bucket_rate_change_keeps_the_tokens_within_the_new_burst() -> None:
    bucket = TokenBucket(100.0)
    bucket.delay(0.0)
    bucket.set_rate(5.0)
    for _ in range(5):
        bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        bucket.set_rate(0)


@pytest.mark.parametrize(("ours", "theirs"), [(90.0, 100.0), (450.0, 500.0), (9.0, 10.0)])
def test_pacing_just_below_the_carriers_policer_is_never_throttled(ours: float, theirs: float) -> None:
    """Sending as fast as our bucket allows for 10 s, the carrier's bucket (the simulator's,
    burst of one second's worth) takes every one; with ours above theirs it would refuse some."""
    sent, refused = send_through(TokenBucket(ours), theirs, seconds=10.0)
    assert refused == 0
    assert sent >= ours * 10  # the budget is used, not wasted
    assert send_through(TokenBucket(theirs * 1.5), theirs, seconds=10.0)[1] > 0


def send_through(bucket: TokenBucket, policed_rate: float, seconds: float) -> tuple[int, int]:
    """Send as fast as `bucket` allows into a carrier policer of `policed_rate`: (sent, refused)."""
    clock = Clock()
    policer = CarrierPolicer(policed_rate, clock)
    sent = refused = 0
    while clock.seconds() < seconds:
        delay = bucket.delay(clock.seconds())
        if delay > 0:
            clock.advance(delay)
            continue
        bucket.take(clock.seconds())
        sent += 1
        refused += not policer.take()
    return sent, refused

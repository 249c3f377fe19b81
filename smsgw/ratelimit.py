"""Send-rate limiting for one carrier link.

`SlidingWindowLimiter` is exact: never more than `rate` sends in any one-second window,
which is how carriers word their TPS contracts.  `TokenBucket` paces a lane that must not
stall (USSD screens): a burst, then an even flow, never a pause until a window slides by.
`AdaptiveRate` sits on top of the sliding window and backs off when the carrier says
ESME_RTHROTTLED (its real limit is lower than the one we were given) and creeps back up as
submits succeed, so one throttle costs a short pause, never minutes of an idle link.
"""

from __future__ import annotations

from collections import deque


class SlidingWindowLimiter:
    """At most `rate` events in any `window` seconds (rate may be fractional: 0.5 = 1 per 2 s)."""

    __slots__ = ("_window", "_limit", "_times")

    def __init__(self, rate: float, window: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if rate < 1:
            # One event per (1/rate) seconds is the same contract with a longer window.
            self._window = window / rate
            self._limit = 1
        else:
            self._window = window
            self._limit = int(rate)
        self._times: deque[float] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    def set_rate(self, rate: float) -> None:
        if rate < 1:
            self._window, self._limit = 1.0 / rate, 1
        else:
            self._window, self._limit = 1.0, int(rate)

    def delay(self, now: float) -> float:
        """Seconds until one more event is allowed (0.0: allowed now)."""
        times = self._times
        cutoff = now - self._window
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) < self._limit:
            return 0.0
        return times[len(times) - self._limit] + self._window - now

    def record(self, now: float) -> None:
        self._times.append(now)
        # Keep memory bounded even if the rate was lowered since these were recorded.
        while len(self._times) > max(self._limit, 1) * 2:
            self._times.popleft()


class AdaptiveRate:
    """AIMD on top of the configured TPS: halve on a throttle, add 5 % of the ceiling per success."""

    __slots__ = ("ceiling", "current", "limiter", "pause_until", "_pause", "min_pause", "max_pause")

    def __init__(self, ceiling: float, min_pause: float = 0.2, max_pause: float = 2.0) -> None:
        self.ceiling = ceiling
        self.current = ceiling
        self.limiter = SlidingWindowLimiter(ceiling)
        self.pause_until = 0.0
        self.min_pause = min_pause
        self.max_pause = max_pause
        self._pause = min_pause

    def delay(self, now: float) -> float:
        if now < self.pause_until:
            return self.pause_until - now
        return self.limiter.delay(now)

    def record(self, now: float) -> None:
        self.limiter.record(now)

    def throttled(self, now: float) -> float:
        """The carrier said 0x58: slow down and pause briefly; returns the pause length."""
        self.current = max(self.current / 2.0, min(1.0, self.ceiling))
        self.limiter.set_rate(self.current)
        pause = self._pause
        self.pause_until = max(self.pause_until, now + pause)
        # Pauses grow only while throttles keep coming, and are capped at a couple of
        # seconds: a throttle must not leave the link idle for long.
        self._pause = min(self._pause * 2.0, self.max_pause)
        return pause

    def succeeded(self) -> None:
        self._pause = self.min_pause
        if self.current < self.ceiling:
            self.current = min(self.ceiling, self.current + max(self.ceiling * 0.05, 0.5))
            self.limiter.set_rate(self.current)

    def set_ceiling(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.current = min(self.current, ceiling) if self.current else ceiling
        self.limiter.set_rate(self.current)


class TokenBucket:
    """`rate` events per second with bursts of up to `burst` (default: one second's worth).

    The shape most SMSCs use to police a TPS contract, so staying inside our own copy, set a
    little below the carrier's, keeps us from being throttled.  Unlike a sliding window, a full
    bucket never makes the next event wait for a whole second, only for 1/rate.
    """

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self._tokens = float("inf")  # clipped to the burst by set_rate: a new bucket starts full
        self._last: float | None = None
        self.set_rate(rate, burst)

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now

    def delay(self, now: float) -> float:
        """Seconds until one more event is allowed (0.0: allowed now)."""
        self._refill(now)
        # The epsilon: waiting the computed delay must make the next call say "now", whatever
        # the rounding of now + delay.
        return 0.0 if self._tokens >= 1.0 - 1e-9 else (1.0 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1.0

    def empty(self, now: float, pause: float = 0.0) -> None:
        """The policer said we are over its limit: assume its bucket is empty, as ours now is,
        and (`pause`) let nothing through for that long at least."""
        self._refill(now)
        self._tokens = min(self._tokens, 0.0, 1.0 - pause * self.rate)

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = min(self._tokens, self.burst)

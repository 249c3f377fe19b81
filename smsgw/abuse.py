"""Protection from handsets that send too much, and from machines that answer machines.

Every MO is still stored and acknowledged (a carrier must never redeliver because of us);
this module only decides whether it gets an answer:
- a person over the per-MSISDN limit gets ONE polite reply, then silence until the window
  clears (answering each extra message would be the flood amplifying itself);
- an auto-responder ping-ponging with us is muted for a cooldown, without a reply, since any
  reply feeds the loop.  A loop is the same (or nearly the same) text coming back after each of
  our replies, `loop_repeats` times, or our own reply echoed back (an echo is never answered;
  `loop_echoes` of them mute).  Speed alone is not a loop: a person sending distinct commands
  quickly is answered, and a burst of the same text before any reply (a handset resending) is
  not a loop either;
- alphanumeric senders (which cannot receive a reply) and foreign numbers follow config.
What a number that is not answered asks to move money or a booking is still carried out (the
gateway asks the handler, see `Gateway._carry_out`); only the reply is withheld.
State is in memory on purpose: it protects the carriers' and the citizens' airtime, not a
ledger, and a restart forgiving everyone is the right failure mode.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass, field

from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Channel, Inbound

log = get_logger(__name__)


class Verdict(str, enum.Enum):
    ANSWER = "answer"
    POLITE_LIMIT = "polite_limit"  # over the limit: answer with the rate-limit notice instead
    SILENT = "silent"  # over the limit, notice already given: store, answer nothing
    MUTED = "muted"  # a loop (or within its cooldown): store, answer nothing
    IGNORED = "ignored"  # a sender kind config says not to serve (alphanumeric, foreign)


@dataclass(frozen=True)
class AbuseConfig:
    max_messages: int = 30  # per MSISDN within window_s
    window_s: float = 600.0
    loop_repeats: int = 5  # the same text this many times within loop_window_s, each after a reply
    loop_echoes: int = 2  # our own replies echoed back within loop_window_s
    loop_window_s: float = 120.0
    loop_cooldown_s: float = 3600.0
    alphanumeric_senders: str = "ignore"  # ignore | process
    foreign_senders: str = "process"  # process | ignore
    home_country_code: str = "968"
    max_tracked: int = 50_000  # senders remembered at once; a spoofed-sender flood costs no more


#: Texts at least this long are compared with their digits masked (an auto-responder's counter or
#: clock changes, its words do not); shorter ones (commands: `1234AB 30` vs `1234AB 60`) exactly.
_LONG_TEXT = 20
#: How much of our last reply is kept to recognise an echo of it (bounded memory per sender).
_ECHO_PREFIX = 40
_DIGITS = re.compile(r"\d+")
_EDGE_PUNCTUATION = ".,!?;:'\"()[]-_*#"


def loop_key(text: str) -> str:
    """The form two texts share when they are "nearly the same": case, spacing and surrounding
    punctuation ignored, and for long texts the numbers too."""
    key = " ".join(text.split()).casefold().strip(_EDGE_PUNCTUATION)
    return _DIGITS.sub("#", key) if len(key) >= _LONG_TEXT else key


@dataclass(slots=True)
class _Sender:
    times: deque[float] = field(default_factory=deque)
    #: (received at, loop key, came back: we had replied since the previous copy of that key)
    texts: deque[tuple[float, str, bool]] = field(default_factory=deque)
    #: When our replies came back (rare: a tuple, not a deque, so most senders cost nothing here).
    echoes: tuple[float, ...] = ()
    told_limit: bool = False
    last_reply_at: float | None = None
    last_reply_key: str | None = None  # the start of our last reply's loop key, if long enough
    muted_until: float = 0.0


class AbuseGuard:
    """Decides, per MO, whether the gateway answers; call `replied` when an answer is queued."""

    def __init__(self, config: AbuseConfig) -> None:
        self.config = config
        self._senders: dict[str, _Sender] = {}
        self.counters: dict[str, int] = {"limited": 0, "loops": 0, "echoes": 0, "ignored_senders": 0}

    def check(self, inbound: Inbound, now: float) -> Verdict:
        cfg = self.config
        msisdn = inbound.msisdn
        if not msisdn.isdigit():
            if cfg.alphanumeric_senders == "ignore":
                self.counters["ignored_senders"] += 1
                return Verdict.IGNORED
        elif not msisdn.startswith(cfg.home_country_code) and cfg.foreign_senders == "ignore":
            self.counters["ignored_senders"] += 1
            return Verdict.IGNORED
        if inbound.channel is Channel.USSD:
            return Verdict.ANSWER  # a dialogue's screens are answers the network asked for
        sender = self._senders.get(msisdn)
        if sender is None:
            if len(self._senders) >= cfg.max_tracked:
                # Forget the sender first seen longest ago (dicts keep insertion order): memory
                # stays bounded whatever the number of distinct senders.
                del self._senders[next(iter(self._senders))]
            sender = self._senders[msisdn] = _Sender()
        if now < sender.muted_until:
            return Verdict.MUTED
        key = loop_key(inbound.text)
        if self._echo(sender, key, now):
            self.counters["echoes"] += 1
            if len(sender.echoes) >= cfg.loop_echoes:
                return self._mute(sender, msisdn, now, "echo")
            return Verdict.MUTED  # our own words back: answering them would start the loop
        if self._repeating(sender, key, now):
            return self._mute(sender, msisdn, now, "repeat")
        times = sender.times
        cutoff = now - cfg.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        times.append(now)
        if len(times) <= cfg.max_messages:
            sender.told_limit = False
            return Verdict.ANSWER
        self.counters["limited"] += 1
        if sender.told_limit:
            return Verdict.SILENT
        sender.told_limit = True
        log.info("msisdn_rate_limited", msisdn=mask_msisdn(msisdn), limit=cfg.max_messages, window_s=cfg.window_s)
        return Verdict.POLITE_LIMIT

    def _mute(self, sender: _Sender, msisdn: str, now: float, cause: str) -> Verdict:
        cfg = self.config
        sender.muted_until = now + cfg.loop_cooldown_s
        self.counters["loops"] += 1
        log.warning("auto_reply_loop_cut", msisdn=mask_msisdn(msisdn), cause=cause, cooldown_s=cfg.loop_cooldown_s)
        return Verdict.MUTED

    def _echo(self, sender: _Sender, key: str, now: float) -> bool:
        """Is this text our last reply coming back (whole, quoted, or cut short)?"""
        reply = sender.last_reply_key
        if reply is None or len(key) < _LONG_TEXT:
            return False
        if reply in key or reply.startswith(key[:_ECHO_PREFIX]):
            cutoff = now - self.config.loop_window_s
            sender.echoes = tuple(t for t in sender.echoes if t > cutoff) + (now,)
            return True
        return False

    def _repeating(self, sender: _Sender, key: str, now: float) -> bool:
        """The same text coming back after our replies, loop_repeats times within the window."""
        cfg = self.config
        texts = sender.texts
        cutoff = now - cfg.loop_window_s
        while texts and texts[0][0] <= cutoff:
            texts.popleft()
        previous = next((at for at, k, _ in reversed(texts) if k == key), None)
        came_back = (previous is not None and sender.last_reply_at is not None
                     and sender.last_reply_at >= previous)
        texts.append((now, key, came_back))
        # A copy that did not come back restarts the count: a resend burst is not a loop.
        returns = 0
        for _, k, back in reversed(texts):
            if k != key:
                continue
            if not back:
                break
            returns += 1
        return returns + 1 >= cfg.loop_repeats

    def replied(self, msisdn: str, now: float, texts: tuple[str, ...] | list[str] = ()) -> None:
        """An answer to `msisdn` was queued (`texts`: what it says, to recognise an echo of it)."""
        sender = self._senders.get(msisdn)
        if sender is not None:
            sender.last_reply_at = now
            if texts:
                key = loop_key(texts[-1])
                sender.last_reply_key = key[:_ECHO_PREFIX] if len(key) >= _LONG_TEXT else None

    def forget_idle(self, now: float) -> int:
        """Drop senders with nothing left in any window (bounded memory on a long run)."""
        horizon = max(self.config.window_s, self.config.loop_window_s)
        idle = [
            m for m, s in self._senders.items()
            if now >= s.muted_until and (not s.times or s.times[-1] <= now - horizon)
            and (not s.texts or s.texts[-1][0] <= now - horizon)
            and (s.last_reply_at is None or s.last_reply_at <= now - horizon)
        ]
        for msisdn in idle:
            del self._senders[msisdn]
        return len(idle)

    def __len__(self) -> int:
        return len(self._senders)

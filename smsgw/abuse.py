"""Protection from handsets that send too much, and from machines that answer machines.

Every MO is still stored and acknowledged (a carrier must never redeliver because of us);
this module only decides whether it gets an answer:
- a person over the per-MSISDN limit gets ONE polite reply, then silence until the window
  clears (answering each extra message would be the flood amplifying itself);
- an auto-responder ping-ponging with us (the same text again and again, or an answer within
  a couple of seconds of each of our replies, several times running) is cut off without a
  reply, since any reply feeds the loop;
- alphanumeric senders (which cannot receive a reply) and foreign numbers follow config.
State is in memory on purpose: it protects the carriers' and the citizens' airtime, not a
ledger, and a restart forgiving everyone is the right failure mode.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from smsgw.log import get_logger, mask_msisdn
from smsgw.message import Channel, Inbound

log = get_logger(__name__)


class Verdict(str, enum.Enum):
    ANSWER = "answer"
    POLITE_LIMIT = "polite_limit"  # answer with the rate-limit notice instead
    SILENT = "silent"  # store, answer nothing


@dataclass(frozen=True)
class AbuseConfig:
    max_messages: int = 30  # per MSISDN within window_s
    window_s: float = 600.0
    loop_repeats: int = 5  # identical texts within loop_window_s, or quick answers in a row
    loop_window_s: float = 120.0
    loop_quick_answer_s: float = 2.0
    loop_cooldown_s: float = 3600.0
    alphanumeric_senders: str = "ignore"  # ignore | process
    foreign_senders: str = "process"  # process | ignore
    home_country_code: str = "968"
    max_tracked: int = 50_000  # senders remembered at once; a spoofed-sender flood costs no more


@dataclass
class _Sender:
    times: deque[float] = field(default_factory=deque)
    texts: deque[tuple[float, str]] = field(default_factory=deque)
    told_limit: bool = False
    quick_answers: int = 0
    last_reply_at: float | None = None
    muted_until: float = 0.0


class AbuseGuard:
    """Decides, per MO, whether the gateway answers; call `replied` when an answer is queued."""

    def __init__(self, config: AbuseConfig) -> None:
        self.config = config
        self._senders: dict[str, _Sender] = {}
        self.counters: dict[str, int] = {"limited": 0, "loops": 0, "ignored_senders": 0}

    def check(self, inbound: Inbound, now: float) -> Verdict:
        cfg = self.config
        msisdn = inbound.msisdn
        if not msisdn.isdigit():
            if cfg.alphanumeric_senders == "ignore":
                self.counters["ignored_senders"] += 1
                return Verdict.SILENT
        elif not msisdn.startswith(cfg.home_country_code) and cfg.foreign_senders == "ignore":
            self.counters["ignored_senders"] += 1
            return Verdict.SILENT
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
            return Verdict.SILENT
        if self._looping(sender, inbound.text, now):
            sender.muted_until = now + cfg.loop_cooldown_s
            self.counters["loops"] += 1
            log.warning("auto_reply_loop_cut", msisdn=mask_msisdn(msisdn), cooldown_s=cfg.loop_cooldown_s)
            return Verdict.SILENT
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

    def _looping(self, sender: _Sender, text: str, now: float) -> bool:
        cfg = self.config
        if sender.last_reply_at is not None and now - sender.last_reply_at <= cfg.loop_quick_answer_s:
            sender.quick_answers += 1
        else:
            sender.quick_answers = 0
        # Cheap on purpose (this runs for every MO): an auto-responder repeats itself exactly.
        key = " ".join(text.split()).casefold()
        texts = sender.texts
        cutoff = now - cfg.loop_window_s
        while texts and texts[0][0] <= cutoff:
            texts.popleft()
        texts.append((now, key))
        repeats = sum(1 for _, t in texts if t == key)
        return repeats >= cfg.loop_repeats or sender.quick_answers >= cfg.loop_repeats

    def replied(self, msisdn: str, now: float) -> None:
        sender = self._senders.get(msisdn)
        if sender is not None:
            sender.last_reply_at = now

    def forget_idle(self, now: float) -> int:
        """Drop senders with nothing left in any window (bounded memory on a long run)."""
        horizon = max(self.config.window_s, self.config.loop_window_s)
        idle = [
            m for m, s in self._senders.items()
            if now >= s.muted_until and (not s.times or s.times[-1] <= now - horizon)
            and (not s.texts or s.texts[-1][0] <= now - horizon)
        ]
        for msisdn in idle:
            del self._senders[msisdn]
        return len(idle)

    def __len__(self) -> int:
        return len(self._senders)

"""A broken or hostile SMSC: seeded fuzz cases against a real gateway over loopback.

The fast subset of `scripts/fuzz.py`: a few hundred cases spread over the three carriers, every
kind at least once per carrier, each answer judged against SMPP v3.4 (carriers/fuzz.py), with
well-formed MOs written behind the garbage on the same links.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from zope.interface import provider

from carriers.fuzz import KINDS, Expect, FuzzCase, generate_case, judge
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import PduError, decode
from tests.stack import CARRIERS, on_loop, start_stack, wait

#: Fast enough for the suite, long enough to cover every kind on every carrier several times.
CASES = 360
SEED = 20260408


class TwistedErrors:
    """Collects what Twisted logs at error level or above (unhandled errors in protocols and
    Deferreds): from outside, that is what a crash in the gateway's data path looks like."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            level = event.get("log_level")
            if "log_failure" in event or (level is not None and level >= LogLevel.error):
                self.events.append(event)

        self._observer = observe

    def __enter__(self) -> TwistedErrors:
        globalLogPublisher.addObserver(self._observer)
        return self

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self._observer)


def test_same_seed_same_cases() -> None:
    """Cases come from the seeded RNG alone: the same seed writes the same bytes."""
    first = [generate_case(random.Random(7), n, mo_id_tlv=0x1400) for n in range(1, 200)]
    again = [generate_case(random.Random(7), n, mo_id_tlv=0x1400) for n in range(1, 200)]
    assert [(x.kind, x.raw) for x in first] == [(x.kind, x.raw) for x in again]


def test_undecodable_kinds_really_are_undecodable() -> None:
    """A case the oracle calls undecodable is refused by a strict decoder too (the generator does
    what its kind says), and an 'answered' deliver_sm decodes."""
    rng = random.Random(3)
    for kind in KINDS:
        for n in range(50):
            case = generate_case(rng, 100 + n, mo_id_tlv=0x1400, kind=kind)
            if case.expect is Expect.REJECTED:
                try:
                    decode(case.raw)
                except PduError:
                    continue
                raise AssertionError(f"{kind} case decodes: {case.raw.hex()}")
            if case.expect is Expect.ANSWERED:
                decode(case.raw)


def test_judge_spec_answers() -> None:
    """The oracle: bad length → nack 0x02; unknown id → nack 0x03; no answer to a response."""
    bad_length = FuzzCase("length_huge", b"", 5, c.DELIVER_SM, Expect.CLOSE, c.ESME_RINVCMDLEN)
    assert judge(bad_length, c.GENERIC_NACK, c.ESME_RINVCMDLEN) is None
    assert judge(bad_length, c.GENERIC_NACK, c.ESME_RINVCMDID) is not None
    assert judge(bad_length, None, None) == "link dropped before an answer"
    stray = FuzzCase("stray_response", b"", 6, c.SUBMIT_SM_RESP, Expect.SILENT)
    assert judge(stray, None, None) is None
    assert judge(stray, c.GENERIC_NACK, c.ESME_RINVCMDID) is not None
    undecodable = FuzzCase("truncated_body", b"", 7, c.DELIVER_SM, Expect.REJECTED)
    assert judge(undecodable, c.DELIVER_SM_RESP, c.ESME_ROK) is not None
    assert judge(undecodable, c.GENERIC_NACK, c.ESME_RINVMSGLEN) is None
    odd_text = FuzzCase("odd_ucs2", b"", 8, c.DELIVER_SM, Expect.ANSWERED)
    assert judge(odd_text, c.DELIVER_SM_RESP, c.ESME_RX_T_APPN) is None
    assert judge(odd_text, c.GENERIC_NACK, c.ESME_RINVMSGLEN) is not None


@on_loop
async def test_fuzzed_smsc_is_answered_per_spec_and_no_wellformed_mo_is_lost(tmp_path: Path) -> None:
    """Hundreds of mutated and random PDUs on all three carriers: each is answered as SMPP v3.4
    asks (or rightly not at all), the gateway never crashes, drops a link only when the stream
    cannot be trusted, and answers every well-formed MO written behind the garbage."""
    lifted = {name: {"tps": 2000.0} for name in CARRIERS}
    stack = await start_stack(tmp_path, carrier_overrides=lifted, sim_overrides=lifted)
    try:
        from carriers.fuzz import FuzzRunner

        runner = FuzzRunner([stack.smsc(n) for n in CARRIERS], cases=CASES, seed=SEED, wellformed_every=4,
                            depth=32, answer_timeout_s=10.0, settle_timeout_s=30.0, cover_all_kinds=True)
        with TwistedErrors() as errors:
            report = await wait(Deferred.fromCoroutine(runner.run()))
        assert report.cases == CASES
        assert set(report.by_kind) == set(KINDS)
        assert report.violations == 0, report.violation_examples
        assert report.unexpected_disconnects == 0
        assert report.links_closed >= 3 * 3  # two bad lengths and one unbind per carrier, at least
        assert report.answers["generic_nack ESME_RINVCMDLEN"] >= 6
        assert report.answers["generic_nack ESME_RINVCMDID"] >= 3
        assert report.wellformed_behind_link_garbage >= 9
        assert report.wellformed_sent > 0 and report.wellformed_lost == 0
        assert errors.events == []
        # Still serving after all of it.
        for carrier in CARRIERS:
            [reply] = await stack.send(carrier, "96897999999", "90091", "HELP", timeout=10)
            assert reply.text
    finally:
        await stack.stop()

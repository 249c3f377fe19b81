"""Coverage of the message corpus (tests/parking_corpus.py): understood / asked to confirm / refused.

    .venv/bin/python scripts/parser_coverage.py          # the table, per category and language
    .venv/bin/python scripts/parser_coverage.py --json   # one JSON line of the same figures

Per category and language of the corpus, how many messages the gateway reads with certainty
(booked, or extended, stopped, listed, as the compact form would be), how many it asks the driver
to confirm (nothing charged before the Y), and how many it refuses (with a hint).  The `compact
alone` column is what the compact parser by itself understood: the reading before the sentence
reader.  Near-misses are messages that must not book: for them "refused" and "confirm" are the
right answers.  The last rows are the 90092 sentences about a request: status or MY ("understood")
versus the usage reply.  Exit status 1 if a message's reading differs from the corpus's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.parking.config import load_parking_config  # noqa: E402
from handlers.parking.parser import Parsed, ParseError, parse  # noqa: E402
from handlers.parking.sentence import Guess, understand  # noqa: E402
from handlers.transactions.refs import ReferenceFormat  # noqa: E402
from handlers.transactions.sentence import read_request  # noqa: E402
from tests.parking_corpus import PARKING_CASES, REQUEST_CASES, Case  # noqa: E402

_ARABIC = re.compile(r"[\u0620-\u064A]")
_LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")


def language(text: str) -> str:
    """ar, en, or mixed (Arabic with English words; a Latin plate alone does not count)."""
    if not _ARABIC.search(text):
        return "en"
    return "mixed" if _LATIN_WORD.search(text) else "ar"


def verdict_of(got: object) -> str:
    if isinstance(got, Guess):
        return "ask"
    return "book" if isinstance(got, Parsed) else "refuse"


def matches(case: Case, got: object) -> bool:
    if case.verdict != verdict_of(got):
        return False
    if isinstance(got, ParseError):
        return got.reason is case.reason
    parsed = got.parsed if isinstance(got, Guess) else got
    assert isinstance(parsed, Parsed)
    return (parsed.command, parsed.plate, parsed.minutes, parsed.zone) == (
        case.command, case.plate, case.minutes, case.zone)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    opts = args.parse_args()

    grammar = load_parking_config(ROOT / "config" / "parking.toml").grammar()
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    wrong: list[str] = []
    for case in PARKING_CASES:
        got = understand(case.text, grammar)
        key = (case.category, language(case.text))
        rows[key]["n"] += 1
        rows[key][verdict_of(got)] += 1
        rows[key]["compact"] += isinstance(parse(case.text, grammar), Parsed)
        if not matches(case, got):
            wrong.append(f"{case.category}: {case.text!r} -> {got}")
    refs = ReferenceFormat()
    for req in REQUEST_CASES:
        text = req.text.split(None, 1)[1] if req.keyword and len(req.text.split()) > 1 else (
            "" if req.keyword else req.text)
        reading = "usage" if not text else (
            "status" if refs.parse(text) else getattr(read_request(text, refs, req.keyword), "intent", None))
        reading = getattr(reading, "value", reading) or "usage"
        key = ("requests_90092", language(req.text))
        rows[key]["n"] += 1
        rows[key]["book" if reading != "usage" else "refuse"] += 1
        rows[key]["compact"] += refs.parse(text) is not None or req.keyword == "MY" and not text
        if reading != req.reading:
            wrong.append(f"requests: {req.text!r} -> {reading} (expected {req.reading})")

    totals: dict[str, int] = defaultdict(int)
    for counts in rows.values():
        for k, v in counts.items():
            totals[k] += v
    if opts.json:
        print(json.dumps({
            "rows": [{"category": c, "lang": lang, **counts} for (c, lang), counts in sorted(rows.items())],
            "total": dict(totals), "mismatches": len(wrong),
        }, ensure_ascii=False))
    else:
        def pct(part: int, whole: int) -> str:
            return f"{part:3d} ({100 * part / whole:3.0f}%)" if whole else "  -"

        head = f"| {'category':<15} | {'lang':<5} | {'n':>3} | {'understood':>10} | {'confirm':>10} | " \
               f"{'refused':>10} | {'compact alone':>13} |"
        print(head)
        print("|" + "|".join("-" * (len(cell)) for cell in head.split("|")[1:-1]) + "|")
        for (category, lang), c in sorted(rows.items()):
            n = c["n"]
            print(f"| {category:<15} | {lang:<5} | {n:>3} | {pct(c['book'], n):>10} | {pct(c['ask'], n):>10} | "
                  f"{pct(c['refuse'], n):>10} | {pct(c['compact'], n):>13} |")
        n = totals["n"]
        print(f"| {'all':<15} | {'':<5} | {n:>3} | {pct(totals['book'], n):>10} | {pct(totals['ask'], n):>10} | "
              f"{pct(totals['refuse'], n):>10} | {pct(totals['compact'], n):>13} |")
        for line in wrong:
            print("MISMATCH", line)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

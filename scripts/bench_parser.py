"""Parse time per message: the compact parser, the sentence reader, and a baseline revision's parser.

    .venv/bin/python scripts/bench_parser.py                         # this tree only
    .venv/bin/python scripts/bench_parser.py --baseline-rev 5b35a7b  # and the parser of that commit

Prints one JSON line, microseconds per message (median of interleaved rounds, so a noisy machine
moves every figure alike and the ratios hold), for three sets of messages:

* `compact`  the forms the parser's own test table reads (plates x durations, keywords, commands):
             the common case, where the handler's `understand` is the compact parse and nothing more;
* `refused`  the malformed messages of that table: the compact parse fails, the sentence reader runs;
* `sentence` the corpus of sentences (tests/parking_corpus.py).

For each: `<set>_parse_us` (parser.parse), `<set>_understand_us` (sentence.understand, what the
handler runs per MO) and, with `--baseline-rev`, `<set>_baseline_us` (that revision's parser.parse,
the reading before) with the ratio `<set>_understand_vs_baseline`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.parking.config import load_parking_config  # noqa: E402
from handlers.parking.parser import parse  # noqa: E402
from handlers.parking.sentence import understand  # noqa: E402
from tests.parking_corpus import PARKING_CASES  # noqa: E402


def message_sets() -> dict[str, list[str]]:
    from tests.test_parking_parser import BOOKINGS, COMMANDS, MALFORMED, PLATE_DURATION_CASES

    return {
        "compact": [t for t, _ in PLATE_DURATION_CASES] + [row[0] for row in BOOKINGS] + [t for t, _ in COMMANDS],
        "refused": [row[0] for row in MALFORMED],
        "sentence": [c.text for c in PARKING_CASES if c.category != "compact"],
    }


def baseline_parser(rev: str, grammar: Any) -> Callable[[str], Any]:
    """The parse function of `rev`'s handlers/parking/parser.py, with a grammar built for it."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:handlers/parking/parser.py"],
                            check=True, capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench-parser-"))
    path = folder / "baseline_parser.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_parser"] = module
    spec.loader.exec_module(module)
    rules = module.PlateRules(letters=dict(grammar.plates.letters), max_digits=grammar.plates.max_digits,
                              max_letters=grammar.plates.max_letters)
    old = module.Grammar(plates=rules, zone_words=dict(grammar.zone_words), unit_minutes=grammar.unit_minutes)
    return lambda text: module.parse(text, old)


def per_message_us(fn: Callable[[str], Any], messages: list[str], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for text in messages:
            fn(text)
    return (time.perf_counter() - start) / (repeat * len(messages)) * 1e6


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--baseline-rev", help="git revision whose parser to time as well (e.g. main)")
    args.add_argument("--rounds", type=int, default=7)
    args.add_argument("--repeat", type=int, default=20, help="passes over the messages per round")
    opts = args.parse_args()

    grammar = load_parking_config(ROOT / "config" / "parking.toml").grammar()
    baseline = baseline_parser(opts.baseline_rev, grammar) if opts.baseline_rev else None
    runs: dict[str, tuple[Callable[[str], Any], list[str]]] = {}
    for name, messages in message_sets().items():
        runs[f"{name}_parse_us"] = (lambda t: parse(t, grammar), messages)
        runs[f"{name}_understand_us"] = (lambda t: understand(t, grammar), messages)
        if baseline is not None:
            runs[f"{name}_baseline_us"] = (baseline, messages)
    for fn, messages in runs.values():  # warm up
        per_message_us(fn, messages, 1)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(opts.rounds):
        for name, (fn, messages) in runs.items():
            samples[name].append(per_message_us(fn, messages, opts.repeat))
    result: dict[str, Any] = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    for name, messages in message_sets().items():
        result[f"{name}_messages"] = len(messages)
        if baseline is not None:
            result[f"{name}_understand_vs_baseline"] = round(
                result[f"{name}_understand_us"] / result[f"{name}_baseline_us"], 3)
    if opts.baseline_rev:
        result["baseline_rev"] = opts.baseline_rev
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a resident meant on 90092 when they wrote a sentence about their request.  Pure.

"What is the status of my request MM-2026-000123?", "وين وصل طلبي", "my permit 2026 123 please":
the reference is found inside the sentence (one reference: its status); a sentence about "my
request(s)", "my permit", "معاملتي" without one, or with several, is answered with the list of
the sender's open requests (MY).  A message that is about neither (`hello`) is left to the usual
"send STATUS and your request number" reply.

A reference is only ever what `ReferenceFormat.parse` accepts: runs of words holding digits (and
the pattern's letters, e.g. `MM`), tried longest first; a reference is never guessed from a
number that does not fit the pattern.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from handlers.transactions.refs import ReferenceFormat
from smsgw.textnorm import normalise

__all__ = ["Intent", "RequestReading", "read_request", "references_in"]


class Intent(str, enum.Enum):
    STATUS = "status"
    MY = "my"


@dataclass(frozen=True)
class RequestReading:
    intent: Intent
    ref: str | None = None  # STATUS: the canonical reference


def _words(text: str) -> frozenset[str]:
    return frozenset(normalise(w) for w in text.split())


# Words that make a sentence about the sender's own request(s).
_REQUEST_WORDS = _words(
    "REQUEST REQUESTS APPLICATION APPLICATIONS APPLIED PERMIT PERMITS LICENCE LICENSE LICENCES LICENSES"
    " LEASE RENEWAL TRANSACTION TRANSACTIONS FILE CASE STATUS UPDATE UPDATES APPROVED APPROVAL"
    " طلب طلبي طلبات طلباتي معامله معاملتي معاملات معاملاتي رخصه رخصتي تصريح تصريحي حالته حاله"
    " عقد ايجار بناء استعلام استفسار موافقه الموافقه"
)
_AR_PREFIXES = tuple(normalise(p) for p in ("وال", "بال", "لل", "ال", "و", "ب", "ل"))
# Arabic letters never belong to a reference: they part words like spaces do.
_ARABIC_LETTERS = re.compile(r"[\u0620-\u064A\u066E-\u06D3]+")
_WORD_SEPARATORS = re.compile(r"[\s,;!?()\[\]{}:\"'<>|]+")


def _is_request_word(word: str) -> bool:
    if word in _REQUEST_WORDS:
        return True
    for prefix in _AR_PREFIXES:
        if word.startswith(prefix) and word[len(prefix):] in _REQUEST_WORDS:
            return True
    return False


def references_in(text: str, fmt: ReferenceFormat) -> list[str]:
    """Every distinct reference written in `text`, in order."""
    norm = normalise(text)
    letters = {g.upper() for g in re.findall(r"[A-Za-z]+", fmt.pattern)}
    words = [w for w in _WORD_SEPARATORS.split(_ARABIC_LETTERS.sub(" ", norm)) if w]
    found: list[str] = []
    i = 0
    while i < len(words):
        if not (any(ch.isdigit() for ch in words[i]) or words[i] in letters):
            i += 1
            continue
        j = i
        while j < len(words) and (any(ch.isdigit() for ch in words[j]) or words[j] in letters):
            j += 1
        # The longest run of these words that is one reference, from the left.
        k = i
        while k < j:
            for end in range(j, k, -1):
                ref = fmt.parse(" ".join(words[k:end]))
                if ref is not None:
                    if ref not in found:
                        found.append(ref)
                    k = end
                    break
            else:
                k += 1
        i = j
    return found


def read_request(text: str, fmt: ReferenceFormat, keyword: str = "") -> RequestReading | None:
    """STATUS of the one reference in `text`; MY for a sentence about the sender's requests; None
    for anything else.  `keyword`: the router's keyword before `text` ("STATUS", "MY" or "")."""
    refs = references_in(text, fmt)
    if len(refs) == 1:
        return RequestReading(Intent.STATUS, refs[0])
    if refs or keyword == "MY":
        return RequestReading(Intent.MY)
    norm = normalise(text)  # (Arabic comma and question mark become ASCII ones here)
    if any(_is_request_word(w) for w in _WORD_SEPARATORS.split(norm) if w):
        return RequestReading(Intent.MY)
    return None


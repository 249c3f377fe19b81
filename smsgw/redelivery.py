"""What counts as a carrier redelivering an MO, as opposed to a new MO that reuses an old id.

A carrier redelivers a deliver_sm whose response it never saw (a lost link, a timeout, our
ESME_RX_T_APPN), and the copy carries the SMSC's own id of the message.  But those ids are not
unique for ever: an SMSC restarts its counter, wraps it, or numbers again from a fixed base after
a reboot.  Taking every id seen before for a redelivery drops new messages after they were
acknowledged, which loses them.  So a redelivery is:

    same carrier, same carrier MO id, same content (sender, destination, body, and for USSD the
    dialogue reference and event), received within `window` seconds of the copy we accepted.

A same-id MO with other content, or one that comes after the window, is a new message.  The window
only bounds how long an accepted MO is remembered; inside it, the content is what tells a
redelivery from a reused id, so a generous window costs storage, not messages (see README,
"Delivery semantics").
"""

from __future__ import annotations

import hashlib
from typing import Final

#: Default window: a carrier redelivers within its retry schedule (seconds to hours: it keeps an MO
#: only for its validity); a day also covers a gateway outage of most of a day.
DEFAULT_WINDOW_S: Final = 86_400.0


def content_hash(
    msisdn: str,
    short_code: str,
    text: str,
    channel: str = "sms",
    session_id: str | None = None,
    session_event: str = "none",
) -> str:
    """A fixed-size fingerprint of what an MO says and between whom (hex, 32 characters).

    Each field is length-prefixed, so no two different messages can share an encoding.
    """
    digest = hashlib.blake2b(digest_size=16)
    for value in (msisdn, short_code, channel, session_id or "", session_event, text):
        data = value.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.hexdigest()

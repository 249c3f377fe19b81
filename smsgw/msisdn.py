"""Subscriber addresses as carriers send them, turned into one canonical form.

Carriers send the same handset as `+96891234567`, `0096891234567`, `96891234567` or,
from some national SMSCs, `91234567`.  Inside the gateway an MSISDN is international
digits without `+`.  This runs for every MO, so it is plain string work; phonenumbers is
used where a person types a number (validation and operator hints), not here.
"""

from __future__ import annotations

import phonenumbers

OMAN_CC = "968"
NATIONAL_LENGTH = 8


def canonical_msisdn(address: str) -> str:
    """International digits for a numeric address; alphanumeric senders are returned stripped."""
    addr = address.strip()
    if addr.startswith("+"):
        addr = addr[1:]
    if not addr.isdigit():
        return addr
    if addr.startswith("00"):
        addr = addr[2:]
    if len(addr) == NATIONAL_LENGTH:
        addr = OMAN_CC + addr
    return addr


def parse_user_msisdn(text: str, region: str = "OM") -> str | None:
    """A number typed by a person (any common form) → international digits, or None if invalid."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def is_omani_mobile(msisdn: str) -> bool:
    try:
        number = phonenumbers.parse("+" + msisdn)
    except phonenumbers.NumberParseException:
        return False
    return (
        number.country_code == 968
        and phonenumbers.number_type(number)
        in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    )

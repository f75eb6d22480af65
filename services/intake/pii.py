"""Masking of personal data (个人信息保护法): the one place that decides what leaves intake.

Everything intake publishes or logs about a person goes through these functions:
mobiles become ``138****5678``, resident ID numbers ``1101**********1234``, card numbers
keep their last four digits, names keep their first character. ``mask_text`` finds such
numbers (and e-mail addresses) inside free text. ``shared.logging.redact`` stays as the
last line of defence in log lines; it is not relied upon here.

It also decides which originals are sealed at rest (``SEALED_FIELDS``, encrypted field by
field in ``personal_data`` by ``repository.IntakeRepository``; ``shared.crypto``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: The originals kept in ``personal_data`` that are encrypted at rest: the customer's name,
#: phone and ID number, and the complaint's free text and demand — people write their card,
#: phone and ID numbers and other people's names into them (``mask_text`` exists for that),
#: so their originals are personal data as much as the named fields. ``customer_id`` (the
#: institution's own reference, in every case and event already) stays in clear.
SEALED_FIELDS: tuple[str, ...] = ("name", "phone", "id_number", "text", "demand")

_MOBILE_DIGITS = re.compile(r"^(?:\+?86)?(1[3-9][0-9])([0-9]{4})([0-9]{4})$")

# In free text: an ID number (18 with check character, or 15 digits), a bank-card number
# (13–19 digits, optionally grouped by spaces or dashes), a mobile (optionally +86 and
# grouped 3-4-4), an e-mail address. Order matters: longest patterns first.
_TEXT_ID = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{5})(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{2}[0-9]{3}[0-9Xx](?![0-9A-Za-z])")
_TEXT_CARD = re.compile(r"(?<![0-9])(?:[0-9][ \-]?){9,15}([0-9]{4})(?![0-9])")
_TEXT_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[ \-]?)?(1[3-9][0-9])[ \-]?([0-9]{4})[ \-]?([0-9]{4})(?![0-9])")
_TEXT_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


def mask_phone(phone: str | None) -> str:
    """Mask a phone number: mobiles as ``138****5678``, others keep only their last four digits."""
    if not phone:
        return ""
    digits = re.sub(r"[^0-9+]", "", phone)
    m = _MOBILE_DIGITS.match(digits)
    if m:
        return f"{m.group(1)}****{m.group(3)}"
    only = digits.lstrip("+")
    if len(only) <= 4:
        return "*" * len(only)
    return "*" * (len(only) - 4) + only[-4:]


def mask_id_number(id_number: str | None) -> str:
    """Mask a resident ID number, keeping the first four and last four characters."""
    if not id_number:
        return ""
    if len(id_number) <= 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def mask_card(card: str | None) -> str:
    """Mask a bank-card number, keeping its last four digits."""
    if not card:
        return ""
    digits = re.sub(r"[^0-9]", "", card)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def mask_name(name: str | None) -> str:
    """Keep a name's first character (of each word, for Latin names), mask the rest."""
    if not name:
        return ""
    words = name.split()
    if len(words) > 1:
        return " ".join(w[0] + "*" * (len(w) - 1) for w in words)
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_text(text: str, *, names: Iterable[str | None] = ()) -> str:
    """Mask ID numbers, card numbers, mobiles and e-mail addresses found in free text.

    ``names`` are people's names known to belong to the complaint (the customer's): where one
    appears in the text it is masked as ``mask_name`` masks it (names of two characters or
    more; other names in free text cannot be told from other words).
    """
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        text = text.replace(name, mask_name(name))
    text = _TEXT_ID.sub(lambda m: m.group(0)[:4] + "*" * (len(m.group(0)) - 8) + m.group(0)[-4:], text)
    text = _TEXT_MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _TEXT_CARD.sub(lambda m: _mask_card_in_text(m.group(0)), text)
    return _TEXT_EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def _mask_card_in_text(found: str) -> str:
    digits = re.sub(r"[^0-9]", "", found)
    if len(digits) < 13:  # an amount, a date or an order number: not a card
        return found
    return "*" * (len(digits) - 4) + digits[-4:]

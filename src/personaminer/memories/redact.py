"""Privacy redaction applied to action text before it enters any prompt.

Logs such as AOL's carry personal data. :func:`redact` replaces e-mail addresses, phone
numbers, payment-card numbers (Luhn-checked), US social-security numbers, and strips the
query string of URLs. It is on by default whenever the LLM backend is a remote server.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?![\w])")
_URL_QUERY = re.compile(r"(\b(?:https?://|www\.)[^\s?#]+)[?#][^\s]*", re.IGNORECASE)


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def redact(text: str) -> str:
    """``text`` with personal identifiers replaced by ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[SSN]``."""
    text = _URL_QUERY.sub(r"\1", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _SSN.sub("[SSN]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub("[PHONE]", text)

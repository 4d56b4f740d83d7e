"""PII scrubbing of the texts the arena stores: the patterns, shared by Python and PostgreSQL,
and the Python scrub (no Django imports: ``arena.models`` reads the patterns to define its
generated columns; the preference export scrubs with ``scrub`` where they are not stored).

Both patterns use explicit ASCII classes (no \\d / \\s / \\w, whose meaning differs between
Python's and PostgreSQL's regex engines and locales): the generated columns
``Turn.prompt_scrubbed`` / ``Response.text_scrubbed`` run the very same pattern strings through
``regexp_replace``, and tests/preferences/test_stored_texts.py checks both engines agree on a
fuzzed corpus.
"""

from __future__ import annotations

import re

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_SEP = r"[ \t\n\r\f\v.-]"
# International or national numbers with separators: +44 20 7946 0958, (555) 123-4567,
# 555.123.4567, +15551234567. Dates (2024-01-15) and short numbers do not match.
PHONE_PATTERN = (
    r"(?=[+(0-9])(?<![A-Za-z0-9_+(.-])(?:"
    r"(?:\+[0-9]{1,3}" + _SEP + r"?)?\([0-9]{1,4}\)" + _SEP + r"?[0-9]{3,4}" + _SEP + r"[0-9]{3,4}"
    r"|(?:\+[0-9]{1,3}" + _SEP + r"?)?[0-9]{2,4}" + _SEP + r"[0-9]{3,4}" + _SEP + r"[0-9]{3,4}"
    r"|\+[0-9]{9,15}"
    r")(?![A-Za-z0-9_]|[.-][0-9])"
)
# Every phone number above has a digit, a separator and three digits, or '+' and nine digits:
# texts without either skip the slow pattern (in both engines).
PHONE_HINT = r"[0-9][ \t\n\r\f\v.-][0-9]{3}|\+[0-9]{9}"
EMAIL_MARK = "[EMAIL]"
PHONE_MARK = "[PHONE]"
# What Python's str.strip() removes (str.isspace): the prompt key strips these in both engines.
PY_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


EMAIL = re.compile(EMAIL_PATTERN)
PHONE = re.compile(PHONE_PATTERN)
_PHONE_HINT = re.compile(PHONE_HINT)


def scrub(text: str) -> str:
    """Replace email addresses and phone numbers with ``[EMAIL]`` / ``[PHONE]``."""
    if "@" in text:
        text = EMAIL.sub(EMAIL_MARK, text)
    if _PHONE_HINT.search(text) is None:
        return text
    return PHONE.sub(PHONE_MARK, text)

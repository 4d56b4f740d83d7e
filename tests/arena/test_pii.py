from __future__ import annotations

from arena.pii import scrub


def test_pii_is_scrubbed_and_ordinary_numbers_kept():
    assert scrub("mail jo.doe+x@mail.example.org now") == "mail [EMAIL] now"
    assert scrub("call +1 (555) 123-4567 or 555.123.4567") == "call [PHONE] or [PHONE]"
    assert "[PHONE]" in scrub("+44 20 7946 0958")
    for keep in ["on 2024-01-15", "v1.2.3", "pi is 3.14159", "ip 192.168.100.200", "id 12345678"]:
        assert scrub(keep) == keep

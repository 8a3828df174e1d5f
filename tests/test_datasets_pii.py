"""Personal data: what is found (and what is not), exact spans, and placeholders."""

from __future__ import annotations

import pytest

from tutelage.datasets.pii import PLACEHOLDERS, PiiSettings, find_pii, redact_text


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to jane.doe+news@example.co.uk today", "email", "jane.doe+news@example.co.uk"),
        ("call +44 20 7946 0958 after six", "phone", "+44 20 7946 0958"),
        ("call (415) 555-2671 after six", "phone", "(415) 555-2671"),
        ("card 4111 1111 1111 1111 expires", "card", "4111 1111 1111 1111"),
        ("card 4111-1111-1111-1111 expires", "card", "4111-1111-1111-1111"),
        ("my SSN is 536-22-1234.", "national_id", "536-22-1234"),
        ("NI number AB 12 34 56 C on file", "national_id", "AB 12 34 56 C"),
        ("NHS number 943 476 5919 on file", "national_id", "943 476 5919"),
        ("server 192.168.0.1 is down", "ip_address", "192.168.0.1"),
        ("server 2001:db8::1 is down", "ip_address", "2001:db8::1"),
        (
            "meet at 1600 Pennsylvania Avenue NW, Washington, DC 20500 tomorrow",
            "address",
            "1600 Pennsylvania Avenue NW, Washington, DC 20500",
        ),
    ],
)
def test_each_kind_is_found_with_its_exact_span(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 is a Luhn-invalid 16-digit number",
        "all zeros 0000 0000 0000 0000 pass Luhn but are no card",
        "release v1.2.3.4 and the dotted 1.2.3.4.5 are versions, 999.1.1.1 is no address",
        "at 12:30:45 the std::vector grew",
        "SSN 000-12-3456 and 666-12-3456 are never issued",
        "prefix GB 12 34 56 C is never issued as an NI number",
        "the meeting is in room 12 on the third floor",
        "I have 3 apples and 12 oranges; 2024 was a year",
        "an @ sign alone, or user@localhost, is no address",
    ],
)
def test_lookalikes_are_not_found(text: str) -> None:
    assert found(text) == []


def test_findings_come_in_order_and_overlaps_keep_the_longer() -> None:
    text = "a@b.io, then 10.0.0.1, then a@b.io again"
    assert found(text) == [("email", "a@b.io"), ("ip_address", "10.0.0.1"), ("email", "a@b.io")]


def test_redaction_puts_placeholders_where_the_findings_were() -> None:
    text = "Mail jane@example.org or call +1 415 555 2671 from 10.1.2.3."
    redacted = redact_text(text, find_pii(text))
    assert redacted == "Mail [EMAIL] or call [PHONE] from [IP_ADDRESS]."
    assert find_pii(redacted) == []
    assert set(PLACEHOLDERS.values()) >= {"[EMAIL]", "[PHONE]", "[IP_ADDRESS]"}


def test_settings_choose_the_kinds() -> None:
    text = "jane@example.org at 10.1.2.3"
    only_ips = find_pii(text, PiiSettings(kinds=("ip_address",)))
    assert [f.kind for f in only_ips] == ["ip_address"]
    with pytest.raises(ValueError, match="unknown PII kind"):
        PiiSettings(kinds=("names",))

"""Personal data in text: find it, and replace it with placeholders.

What is found, and by what:

- ``email``: e-mail addresses (a regular expression for ``local@domain.tld``).
- ``phone``: phone numbers, found and validated by `phonenumbers` (Google's
  libphonenumber) in international form (``+44 20 7946 0958``) and in the national
  forms of `PiiSettings.phone_regions` (default US and GB).
- ``card``: payment card numbers, 13-19 digits (spaces or hyphens between groups
  allowed) that pass the Luhn check (`stdnum.luhn`).
- ``national_id``: US social security numbers written ``123-45-6789`` (validated by
  `stdnum.us.ssn`, which rejects the numbers never issued), UK National Insurance
  numbers (``QQ 12 34 56 C``; prefix rules from HMRC's manual, hand-written because no
  maintained library checks them) and UK NHS numbers (``943 476 5919``, mod-11 check
  digit, `stdnum.gb.nhs`).
- ``ip_address``: IPv4 and IPv6 addresses, validated by the standard `ipaddress`. A
  dotted quad that is part of a version string (``v1.2.3.4``, ``1.2.3.4.5``) is not one.
- ``address``: street addresses of the US, Canada and the UK, found by `pyap2`
  (maintained, rule-based, offline), kept only with a house number and a postal code
  (without one its rules take "12 34 56 C is ..." for a street), so "the house on Elm
  Street" and "123 Main St, Springfield" are not found.

Not found: person names, and addresses in other countries or without a house number.
Finding names in free text takes a named-entity model; the maintained ones (spaCy's
English pipelines, used by Presidio) are downloaded from outside PyPI at run time,
which tutelage does not do, and a list of first names flags "May", "Will" and "Grace"
in ordinary prose. Detection is a safety net, not a guarantee: read the findings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["KINDS", "PLACEHOLDERS", "Finding", "PiiSettings", "find_pii", "redact_text"]

KINDS = ("email", "phone", "card", "national_id", "ip_address", "address")
PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "national_id": "[NATIONAL_ID]",
    "ip_address": "[IP_ADDRESS]",
    "address": "[ADDRESS]",
}

_PRIORITY = ("card", "national_id", "email", "ip_address", "phone", "address")
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])"
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
# HMRC NIM39110: the first letter is not D, F, I, Q, U or V; the second is not D, F, I,
# O, Q, U or V; the prefixes BG, GB, KN, NK, NT, TN and ZZ are never issued.
_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_NHS = re.compile(r"(?<![\d-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\d-])")
# A dotted quad not glued to a letter (v1.2.3.4) or to more dotted numbers (1.2.3.4.5).
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_DIGIT = re.compile(r"\d")
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")


@dataclass(frozen=True)
class PiiSettings:
    """Which kinds to look for, and the regions whose national phone formats count."""

    kinds: tuple[str, ...] = KINDS
    phone_regions: tuple[str, ...] = ("US", "GB")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown PII kind(s) {unknown}; known: {', '.join(KINDS)}")


@dataclass(frozen=True, order=True)
class Finding:
    """Personal data of `kind` at text[start:end] (character offsets)."""

    start: int
    end: int
    kind: str


def _emails(text: str) -> Iterable[Finding]:
    for match in _EMAIL.finditer(text):
        yield Finding(match.start(), match.end(), "email")


def _phones(text: str, regions: tuple[str, ...]) -> Iterable[Finding]:
    import phonenumbers

    if len(_DIGIT.findall(text)) < 7:
        return
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            yield Finding(match.start, match.end, "phone")


def _cards(text: str) -> Iterable[Finding]:
    from stdnum import luhn

    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if luhn.is_valid(digits) and len(set(digits)) > 1:
            yield Finding(match.start(), match.end(), "card")


def _national_ids(text: str) -> Iterable[Finding]:
    from stdnum.gb import nhs
    from stdnum.us import ssn

    for match in _SSN.finditer(text):
        if ssn.is_valid(match.group()):
            yield Finding(match.start(), match.end(), "national_id")
    for match in _NINO.finditer(text):
        yield Finding(match.start(), match.end(), "national_id")
    for match in _NHS.finditer(text):
        if nhs.is_valid(match.group()):
            yield Finding(match.start(), match.end(), "national_id")


def _ip_addresses(text: str) -> Iterable[Finding]:
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            candidate = match.group()
            if pattern is _IPV6 and (candidate.count(":") < 2 or candidate.strip(":") == ""):
                continue
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            yield Finding(match.start(), match.end(), "ip_address")


def _addresses(text: str) -> Iterable[Finding]:
    import pyap

    # pyap2 costs tens of milliseconds a kilobyte; skip the texts it cannot match in.
    if not _DIGIT.search(text):
        return
    found: list[Finding] = []
    for country in ("US", "CA", "GB"):
        if country == "GB" and not _UK_POSTCODE.search(text):
            continue
        # Its UK rules are the loosest: they run last, on the text with the North
        # American addresses blanked out (same length, so the offsets hold).
        masked = text
        for finding in found:
            size = finding.end - finding.start
            masked = masked[: finding.start] + " " * size + masked[finding.end :]
        for address in pyap.parse(masked, country=country):
            start, end = address.match_start, address.match_end
            # Without a postcode pyap2 reads "12 34 56 C is never issued" as a street.
            if start is None or end is None or not address.postal_code:
                continue
            matched = text[start:end]
            # pyap's match may carry the spaces or the next word around the address.
            stripped = matched.strip()
            if not stripped:
                continue
            start += matched.index(stripped)
            found.append(Finding(start, start + len(stripped), "address"))
    yield from found


def find_pii(text: str, settings: PiiSettings | None = None) -> list[Finding]:
    """Return the personal data found in `text`, in order; overlaps resolved (see below).

    Where two findings overlap, the longer one is kept (an address holding a phone
    number is one address); of equal length, the one whose check is stricter (a valid
    NHS number may also read as a US phone number).
    """
    settings = settings or PiiSettings()
    found: list[Finding] = []
    kinds = set(settings.kinds)
    if "email" in kinds:
        found.extend(_emails(text))
    if "phone" in kinds:
        found.extend(_phones(text, settings.phone_regions))
    if "card" in kinds:
        found.extend(_cards(text))
    if "national_id" in kinds:
        found.extend(_national_ids(text))
    if "ip_address" in kinds:
        found.extend(_ip_addresses(text))
    if "address" in kinds:
        found.extend(_addresses(text))
    found.sort(key=lambda f: (-(f.end - f.start), _PRIORITY.index(f.kind), f.start))
    kept: list[Finding] = []
    for finding in found:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept)


def redact_text(text: str, findings: Iterable[Finding]) -> str:
    """Return `text` with each (non-overlapping) finding replaced by its placeholder."""
    parts: list[str] = []
    position = 0
    for finding in sorted(findings):
        parts.append(text[position : finding.start])
        parts.append(PLACEHOLDERS[finding.kind])
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)

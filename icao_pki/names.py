"""Distinguished names and alternative names for ICAO 9303-12 certificates.

Why a module of its own: border systems match a DS certificate to its CSCA by issuer name
and compare the country of the document with the country in the certificate.  9303-12
(§4.1, Table 5 issuer/subject) wants ``countryName`` present, upper-case, as a
PrintableString, and identical in issuer and subject; the alternative names carry a
directoryName whose ``localityName`` is the three-letter MRZ code (``VNM``), because the
two-letter country code alone cannot distinguish e.g. a state from an organisation.
Names are built here once, with fixed attribute order and string types, so every
certificate and CRL we issue spells the same name byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asn1crypto import x509

#: Decree 68/2024 / Circular 04/2019: the government CA's organisation name.
PROVIDER_ORGANIZATION = "Ban Cơ yếu Chính phủ"
COUNTRY = "VN"
MRZ_COUNTRY = "VNM"

_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_MRZ_RE = re.compile(r"^[A-Z<]{3}$")

#: Short labels used when names are printed (RFC 4514 order: as encoded, most general first).
_SHORT = {
    "country_name": "C",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "common_name": "CN",
    "serial_number": "serialNumber",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "email_address": "emailAddress",
}


class X509Error(Exception):
    """Root of every error raised by icao-pki's X.509 side (names, certificates, CRLs, lint).

    It lives in this, the lowest, module so that every other X.509 module can raise its
    subclasses without import cycles; `icao_pki.certificate` re-exports it."""


class InvalidNameError(X509Error, ValueError):
    """A name that ICAO 9303-12 does not allow us to issue."""


@dataclass(frozen=True)
class DistinguishedName:
    """The subject or issuer name of a certificate we issue.

    Attribute order is fixed (C, O, OU, CN, serialNumber); countryName is a PrintableString,
    the others UTF8String (Vietnamese names need diacritics).
    """

    common_name: str
    country: str = COUNTRY
    organization: str | None = PROVIDER_ORGANIZATION
    organizational_unit: str | None = None
    serial_number: str | None = None

    def __post_init__(self) -> None:
        if not _COUNTRY_RE.match(self.country):
            raise InvalidNameError(
                f"countryName must be two upper-case letters (9303-12 Table 5), got {self.country!r}"
            )
        if not self.common_name.strip():
            raise InvalidNameError("commonName must not be empty")

    def to_asn1(self) -> x509.Name:
        rdns: list[tuple[str, str, str]] = [("country_name", "printable_string", self.country)]
        if self.organization:
            rdns.append(("organization_name", "utf8_string", self.organization))
        if self.organizational_unit:
            rdns.append(("organizational_unit_name", "utf8_string", self.organizational_unit))
        rdns.append(("common_name", "utf8_string", self.common_name))
        if self.serial_number:
            rdns.append(("serial_number", "printable_string", self.serial_number))
        return x509.Name(
            name="",
            value=x509.RDNSequence(
                [
                    x509.RelativeDistinguishedName(
                        [
                            x509.NameTypeAndValue(
                                {"type": attr, "value": x509.DirectoryString(name=kind, value=value)}
                            )
                        ]
                    )
                    for attr, kind, value in rdns
                ]
            ),
        )


def as_name(name: DistinguishedName | x509.Name) -> x509.Name:
    """Accept either our dataclass or an already-encoded asn1crypto name."""
    if isinstance(name, DistinguishedName):
        return name.to_asn1()
    if isinstance(name, x509.Name):
        return name
    raise TypeError(f"expected a DistinguishedName or asn1crypto Name, got {type(name).__name__}")


def locality_directory_name(mrz_country: str = MRZ_COUNTRY) -> x509.GeneralName:
    """directoryName { localityName = <MRZ code> } for subject/issuer alternative names."""
    if not _MRZ_RE.match(mrz_country):
        raise InvalidNameError(f"localityName must be the three-letter MRZ country code, got {mrz_country!r}")
    name = x509.Name(
        name="",
        value=x509.RDNSequence(
            [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameTypeAndValue(
                            {
                                "type": "locality_name",
                                "value": x509.DirectoryString(name="printable_string", value=mrz_country),
                            }
                        )
                    ]
                )
            ]
        ),
    )
    return x509.GeneralName(name="directory_name", value=name)


def alt_names(mrz_country: str = MRZ_COUNTRY) -> x509.GeneralNames:
    return x509.GeneralNames([locality_directory_name(mrz_country)])


def attributes(name: x509.Name) -> list[tuple[str, str, str]]:
    """Flatten a name to (attribute, string type, value) in encoded order; tolerant of
    anything 190 states put there."""
    result: list[tuple[str, str, str]] = []
    for rdn in name.chosen:
        for atv in rdn:
            attr = atv["type"].native
            value = atv["value"]
            kind = value.name if isinstance(value, x509.DirectoryString) else type(value).__name__
            try:
                text = value.native
            except Exception:
                text = value.dump().hex()
            if not isinstance(text, str):
                text = str(text)
            result.append((attr, kind, text))
    return result


def format_name(name: x509.Name) -> str:
    """'C=VN, O=…, CN=…' in encoded order (not RFC 4514's reversed order: easier to read)."""
    return ", ".join(f"{_SHORT.get(attr, attr)}={value}" for attr, _, value in attributes(name))


def country_of(name: x509.Name) -> str | None:
    for attr, _, value in attributes(name):
        if attr == "country_name":
            return value
    return None


def directory_localities(names: x509.GeneralNames | None) -> list[str]:
    """localityName values of every directoryName in a GeneralNames."""
    found: list[str] = []
    if names is None:
        return found
    for general in names:
        if general.name != "directory_name":
            continue
        for attr, _, value in attributes(general.chosen):
            if attr == "locality_name":
                found.append(value)
    return found

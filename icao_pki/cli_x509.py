"""`icao-pki x509` and `icao-pki crl`: look at and lint certificates and CRLs (DER or PEM)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .certificate import CertificateDecodeError, parse_certificate
from .console import EXIT_INVALID, JsonOption, out, print_json, read_input_file, reporting, to_jsonable
from .crl import CrlDecodeError, parse_crl
from .lint import check_certificate, summarize

app = typer.Typer(help="X.509 certificates: show and lint against ICAO 9303-12 and the decree.", no_args_is_help=True)
crl_app = typer.Typer(help="CSCA certificate revocation lists.", no_args_is_help=True)


class RoleChoice(str, Enum):
    csca = "csca"
    csca_link = "csca-link"
    ds = "ds"
    mls = "mls"
    dls = "dls"


class DocChoice(str, Enum):
    passport = "passport"
    idcard = "idcard"


_FILE = typer.Argument(..., help="Certificate file, DER or PEM.", show_default=False)


def _show_mapping(title: str, data: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        value = to_jsonable(value)
        if isinstance(value, list):
            text = "\n".join(str(v) if not isinstance(v, dict) else ", ".join(f"{k}={x}" for k, x in v.items()) for v in value) or "—"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items())
        else:
            text = "—" if value is None else str(value)
        table.add_row(key.replace("_", " "), text)
    out.print(table)


@app.command("show")
def show(file: Path = _FILE, as_json: bool = JsonOption) -> None:
    """Print a certificate's fields: names, validity, private-key usage period, key (explicit
    EC parameters mapped to the curve), key identifiers, ICAO extensions and role hints."""
    with reporting(CertificateDecodeError):
        cert = parse_certificate(read_input_file(file))
        data = cert.describe()
    if as_json:
        print_json(data)
        return
    _show_mapping(f"certificate {file}", data)


@app.command("lint")
def lint(
    file: Path = _FILE,
    role: RoleChoice = typer.Option(..., "--role", help="Profile to check against (9303-12 Table 6 column)."),
    doc: DocChoice = typer.Option(..., "--doc", help="Document type whose decree limits apply."),
    as_json: bool = JsonOption,
) -> None:
    """Check a certificate against its 9303-12 profile and the decree; exit 1 on any error finding."""
    with reporting(CertificateDecodeError):
        cert = parse_certificate(read_input_file(file))
        findings = check_certificate(cert, role.value, doc.value)
    errors = [f for f in findings if f.is_error]
    if as_json:
        print_json(
            {
                "file": str(file),
                "subject": cert.subject_str,
                "role": role.value,
                "document_type": doc.value,
                "valid": not errors,
                "counts": summarize(findings),
                "findings": [f.as_dict() for f in findings],
            }
        )
    else:
        if findings:
            table = Table(title=f"lint {file} as {role.value} ({doc.value})")
            for col in ("severity", "code", "message", "citation"):
                table.add_column(col, overflow="fold")
            for f in findings:
                style = {"error": "red", "warning": "yellow"}.get(f.severity.value, "")
                table.add_row(f"[{style}]{f.severity.value}[/]" if style else f.severity.value, f.code, f.message, f.citation)
            out.print(table)
        counts = summarize(findings)
        verdict = "FAIL" if errors else "OK"
        out.print(f"{verdict}: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s)")
    if errors:
        raise typer.Exit(EXIT_INVALID)


@crl_app.command("show")
def crl_show(
    file: Path = typer.Argument(..., help="CRL file, DER or PEM.", show_default=False),
    as_json: bool = JsonOption,
) -> None:
    """Print a CRL: issuer, thisUpdate/nextUpdate, cRLNumber, AKI and the revoked serials with reasons."""
    with reporting(CrlDecodeError):
        crl = parse_crl(read_input_file(file))
        data = crl.describe()
    if as_json:
        print_json(data)
        return
    revoked = data.pop("revoked")
    _show_mapping(f"CRL {file}", data)
    if revoked:
        table = Table(title=f"{len(revoked)} revoked certificate(s)")
        for col in ("serial", "revocation date", "reason", "invalidity date"):
            table.add_column(col)
        for entry in revoked:
            table.add_row(
                entry["serial_number"],
                str(to_jsonable(entry["revocation_date"])),
                entry["reason"] or "—",
                str(to_jsonable(entry["invalidity_date"])) if entry["invalidity_date"] else "—",
            )
        out.print(table)
    else:
        out.print("no revoked certificates")

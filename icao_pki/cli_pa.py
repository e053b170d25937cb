"""`icao-pki ml` (CSCA Master Lists) and `icao-pki pa` (Passive Authentication).

Files may be DER or PEM.  Verify-type commands exit 0 when valid, 1 when checked and found
invalid (with the reasons), 2 for bad input.  The verification time defaults to now — the
only clock read, at the edge; the codecs take the time as a parameter.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from asn1crypto import pem
from rich.table import Table

from .clock import SystemClock
from .cms import CmsError, Finding, Severity, load_certificate
from .console import EXIT_INVALID, CommandError, JsonOption, out, print_json, read_input_file, reporting, to_jsonable
from .masterlist import check_master_list, parse_master_list
from .pa import PaMode, check_pa

ml_app = typer.Typer(help="CSCA Master Lists: show and verify.", no_args_is_help=True)
pa_app = typer.Typer(help="Passive Authentication of an EF.SOD and its data groups.", no_args_is_help=True)

_ML_FILE = typer.Argument(..., help="Master List file (CMS SignedData), DER or PEM.", show_default=False)


def read_der(path: Path) -> bytes:
    """A file's DER bytes: PEM is unarmored (first block), anything else taken as DER."""
    data = read_input_file(path)
    if pem.detect(data):
        try:
            _, _, der = pem.unarmor(data)
        except ValueError as exc:
            raise CommandError(f"{path}: malformed PEM: {exc}") from None
        return der
    return data


def read_ders(path: Path) -> list[bytes]:
    """All PEM blocks of a file (a CSCA bundle), or the file as one DER object."""
    data = read_input_file(path)
    if pem.detect(data):
        try:
            return [der for _, _, der in pem.unarmor(data, multiple=True)]
        except ValueError as exc:
            raise CommandError(f"{path}: malformed PEM: {exc}") from None
    return [data]


def parse_time(value: str | None) -> datetime:
    if value is None:
        return SystemClock().now()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise CommandError(f"--at {value!r} needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return when


def _print_findings(findings: list[Finding]) -> None:
    if not findings:
        out.print("no findings")
        return
    table = Table(show_header=True)
    for column in ("severity", "code", "message", "subject"):
        table.add_column(column, overflow="fold")
    colour = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
    for f in findings:
        table.add_row(f"[{colour[f.severity]}]{f.severity.value}[/]", f.code, f.message, f.subject or "")
    out.print(table)


# --- ml ------------------------------------------------------------------------------------


@ml_app.command("show")
def ml_show(file: Path = _ML_FILE, as_json: bool = JsonOption) -> None:
    """List a Master List's signer and CSCA entries (root or link, country, subject, expiry).
    Does not judge validity: use `ml verify`."""
    with reporting(CmsError):
        ml = parse_master_list(read_der(file))
        report = check_master_list(ml)
    data = {
        "version": ml.version,
        "signer": report.signer_subject,
        "signing_time": report.signing_time,
        "entry_count": len(report.entries),
        "entries": [
            {k: v for k, v in e.as_dict().items() if k in ("index", "kind", "country", "subject", "serial", "not_after")}
            for e in report.entries
        ],
    }
    if as_json:
        print_json(data)
        return
    out.print(f"Master List v{ml.version}, signer: {report.signer_subject}, signed {report.signing_time}")
    table = Table(title=f"{len(report.entries)} CSCA certificates")
    for column in ("#", "kind", "country", "subject", "not after"):
        table.add_column(column, overflow="fold")
    for e in data["entries"]:  # type: ignore[union-attr]
        table.add_row(str(e["index"]), e["kind"], e["country"] or "", e["subject"] or "", str(to_jsonable(e["not_after"])))
    out.print(table)


@ml_app.command("verify")
def ml_verify(
    file: Path = _ML_FILE,
    csca: list[Path] = typer.Option(
        [], "--csca", help="Trusted CSCA of the list's issuer (DER/PEM, repeatable) to anchor the ML signer."
    ),
    at: str | None = typer.Option(None, "--at", help="Verification time, ISO 8601 with zone (default: now)."),
    as_json: bool = JsonOption,
) -> None:
    """Verify the list's signature and ML signer path, and validate every CSCA entry (roots by
    self-signature, link certificates against their issuer).  Exit 1 if the list does not verify."""
    with reporting(CmsError):
        when = parse_time(at)
        anchors = [der for path in csca for der in read_ders(path)]
        for der in anchors:
            load_certificate(der)
        report = check_master_list(parse_master_list(read_der(file)), trust_anchors=anchors, at=when)
    if as_json:
        print_json(report.as_dict())
    else:
        verdict = "[green]valid[/]" if report.valid else "[red]INVALID[/]"
        bad = sum(1 for e in report.entries if not e.valid)
        out.print(f"Master List {verdict}: signer {report.signer_subject}; {len(report.entries)} entries, {bad} with errors")
        _print_findings(report.findings)
        entry_findings = [f for e in report.entries for f in e.findings]
        if entry_findings:
            out.print("entries:")
            _print_findings(entry_findings)
    if not report.valid:
        raise typer.Exit(EXIT_INVALID)


# --- pa ------------------------------------------------------------------------------------


def _parse_dg_option(value: str) -> tuple[int, Path]:
    number, sep, path = value.partition("=")
    if not sep or not number.strip().isdigit() or not 1 <= int(number) <= 16:
        raise CommandError(f"--dg {value!r}: expected N=FILE with N in 1..16")
    return int(number), Path(path)


@pa_app.command("verify")
def pa_verify(
    sod: Path = typer.Option(..., "--sod", help="EF.SOD file (0x77-wrapped), DER or PEM.", show_default=False),
    dg: list[str] = typer.Option([], "--dg", help="Data group as N=FILE (complete DG TLV), repeatable."),
    csca: list[Path] = typer.Option(
        [], "--csca", help="Trusted CSCA certificate(s), DER/PEM, repeatable; with --ml: anchors for the ML signer."
    ),
    ml: Path | None = typer.Option(None, "--ml", help="Master List whose CSCAs to trust."),
    crl: list[Path] = typer.Option([], "--crl", help="CSCA CRL, DER/PEM, repeatable."),
    at: str | None = typer.Option(None, "--at", help="Verification time, ISO 8601 with zone (default: now)."),
    strict: bool = typer.Option(False, "--strict", help="Strict mode (our own documents): deviations are errors."),
    as_json: bool = JsonOption,
) -> None:
    """Passive Authentication: SOD signature, DS → CSCA path (link certificates included),
    DS private-key usage period at signing time, CRL status, data-group hashes, and the MRZ
    issuing state against the CSCA's country.  Exit 0 valid, 1 invalid, 2 bad input."""
    with reporting(CmsError):
        if ml is None and not csca:
            raise CommandError("give trusted CSCAs with --csca FILE or a Master List with --ml FILE")
        when = parse_time(at)
        data_groups: dict[int, bytes] = {}
        for value in dg:
            number, path = _parse_dg_option(value)
            if number in data_groups:
                raise CommandError(f"DG{number} given twice")
            data_groups[number] = read_input_file(path)
        anchors = [der for path in csca for der in read_ders(path)]
        for der in anchors:
            load_certificate(der)  # a trust file that is not a certificate is bad input (exit 2)
        if ml is not None:
            trust = check_master_list(parse_master_list(read_der(ml)), trust_anchors=anchors, at=when)
        else:
            trust = anchors
        crls = [der for path in crl for der in read_ders(path)]
        result = check_pa(
            read_der(sod), data_groups, trust=trust, at=when, crls=crls, mode=PaMode.STRICT if strict else PaMode.TOLERANT
        )
    if as_json:
        print_json(result.as_dict())
    else:
        verdict = "[green]VALID[/]" if result.valid else "[red]INVALID[/]"
        out.print(f"Passive Authentication {verdict} ({result.mode.value}, at {to_jsonable(result.at)})")
        out.print(f"DGs checked: {result.data_groups_checked or '—'} of {result.data_groups_in_sod} in the SOD")
        out.print(f"DS:   {result.ds_subject}")
        out.print(f"CSCA: {result.csca_subject}")
        out.print(f"MRZ issuing state: {result.issuing_state}  CSCA country: {result.csca_country}")
        _print_findings(result.findings)
    if not result.valid:
        raise typer.Exit(EXIT_INVALID)

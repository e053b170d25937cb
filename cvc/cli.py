"""`icao-pki cvc`: show and verify TR-03110 card-verifiable certificates.

Files may be raw DER or hex text.  `verify` is the issuer-side check at a day T
(`cvc.validation.check_chain_at`): exit 0 valid, 1 invalid (with the reason), 2 bad input.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from icao_pki.clock import SystemClock
from icao_pki.console import EXIT_INVALID, JsonOption, fail, out, print_json, read_input_file, reporting

from .certificate import CvCertificate, CvObject, parse_certificate, parse_cv, read_cv_bytes
from .chat import ChatRole
from .describe import describe
from .errors import CvcError, CvcValidationError
from .validation import check_chain_at, order_chain

app = typer.Typer(help="TR-03110 card-verifiable certificates: show and verify.", no_args_is_help=True)


def _load(path: Path) -> CvObject:
    try:
        return parse_cv(read_cv_bytes(read_input_file(path)))
    except CvcError as exc:
        raise CvcError(f"{path}: {exc}") from None


def _load_certificate(path: Path) -> CvCertificate:
    try:
        return parse_certificate(read_cv_bytes(read_input_file(path)))
    except CvcError as exc:
        raise CvcError(f"{path}: {exc}") from None


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="CV certificate, request or authenticated request (DER or hex)."),
    trust: Path | None = typer.Option(
        None, "--trust", help="CVCA certificate whose curve DV/terminal keys without domain parameters inherit."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Print the fields of a CV certificate or request."""
    with reporting(CvcError):
        obj = _load(file)
        inherited = None
        if trust is not None:
            anchor = _load_certificate(trust)
            if anchor.role is not ChatRole.CVCA:
                raise CvcError(f"{trust}: --trust must be a CVCA certificate, this is {anchor.role.value}")
            inherited = anchor.public_key.curve
        info = describe(obj, inherited_curve=inherited)
    if as_json:
        print_json(info)
        return
    table = Table(title=f"{info['kind'].replace('_', ' ')} {info['chr']}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in info.items():
        if key == "public_key":
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(value) or "—"
        table.add_row(key, "—" if value is None else str(value))
    out.print(table)


def _parse_day(text: str | None) -> date:
    if text is None:
        return SystemClock().now().date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not a date YYYY-MM-DD")


@app.command("verify")
def verify(
    files: list[Path] = typer.Argument(..., help="Certificates of the chain below the trust anchor, in any order."),
    trust: Path = typer.Option(..., "--trust", help="Self-signed CVCA certificate to trust."),
    at: str | None = typer.Option(None, "--at", help="Validate at this day (YYYY-MM-DD); default today (UTC)."),
    as_json: bool = JsonOption,
) -> None:
    """Validate a CVCA → [link …] → DV → terminal chain at a day: exit 0 valid, 1 invalid."""
    day = _parse_day(at)
    with reporting(CvcError):
        anchor = _load_certificate(trust)
        certificates = [_load_certificate(f) for f in files]
    try:
        chain = order_chain(anchor, certificates)
        report = check_chain_at(anchor, chain, day)
        findings = [{"reason": f.reason, "chr": f.chr, "message": f.message} for f in report.findings]
        chrs = [c.chr for c in chain]
    except CvcValidationError as exc:
        findings = [{"reason": exc.reason, "chr": exc.chr, "message": exc.message}]
        report = None
        chrs = [c.chr for c in certificates]
    valid = not findings
    auth = report.effective_authorization if report else None
    result = {
        "valid": valid,
        "at": day.isoformat(),
        "trust": anchor.chr,
        "chain": chrs,
        "findings": findings,
        "effective_authorization": {"chat_hex": auth.hex, "rights": auth.rights} if auth else None,
    }
    if as_json:
        print_json(result)
        if not valid:
            raise typer.Exit(EXIT_INVALID)
        return
    if not valid:
        first = findings[0]
        fail(f"invalid: {first['chr'] + ': ' if first['chr'] else ''}{first['message']}", EXIT_INVALID)
    out.print(f"valid on {day.isoformat()}: {' → '.join([anchor.chr, *chrs])}", highlight=False)
    if auth:
        out.print(f"effective authorization {auth.hex} ({', '.join(auth.rights) or 'none'})", highlight=False)

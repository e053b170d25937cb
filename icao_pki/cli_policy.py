"""`icao-pki policy`: the decree's limits as this deployment enforces them."""

from __future__ import annotations

import typer
from rich.table import Table

from .console import JsonOption, out, print_json, reporting
from .policy import PolicyError, policy_from_env

app = typer.Typer(help="The per-role limits of Decree 68/2024 Art. 23 and 26.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = JsonOption) -> None:
    """List every document type × role limit in force, with the article that sets it.

    Shows the decree's limits, narrowed by the deployment's ICAO_PKI_POLICY_FILE if set."""
    with reporting(PolicyError):
        rows = policy_from_env().rows()
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    table = Table(title="Decree 68/2024/NĐ-CP — per-role limits")
    for col in ("document", "role", "certificate validity", "private-key usage", "max signatures", "article"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.document_type.label,
            r.role.label,
            r.certificate_validity,
            r.key_usage,
            f"{r.max_signatures:,}" if r.max_signatures else "—",
            r.article,
        )
    out.print(table)

"""`icao-pki simulate`: years of DS signing, rollovers, renewals and CRLs on a fake clock.

Runs the real signing service, schedules and request flow (`schedules.simulation`) against a
throwaway SoftHSM2 token and SQLite database in a temporary folder: every DS key is asked for
by the Agency in a signed ``ds_certificate`` request, countersigned by its Cơ yếu unit and
issued by the Provider, as in a deployment; the CVCA and CSCA roll over through key ceremonies
a second Provider officer approves.  Prints the timeline (each DS rollover with its request and
the request's state, each ceremony with its new CA, link certificate and Master List) and a
final line stating how many DS certificates came through completed requests, whether any limit
was exceeded and whether signing ever stopped.
Exit 0 when neither happened, 1 otherwise.
"""

from __future__ import annotations

from collections import Counter

import typer

from .console import EXIT_INVALID, err, print_json, reporting
from .keystore import KeyStoreError
from .policy import PolicyError, policy_from_env

#: summarised per month instead of one line each: how to say the month's number
QUIET_KINDS = {"crl": "issued", "expiry": "day(s)", "renewal-refused": "refused"}
#: printed in full the first time (when it started), then summarised per month
FIRST_THEN_QUIET = {"refused": "batch(es) refused"}


def simulate(
    years: int = typer.Option(2, "--years", min=1,
                              help="Simulated years, at most 9 (the simulated government CA's sub-CA lives 10)."),
    sods_per_day: int = typer.Option(420, "--sods-per-day", min=0, help="SODs the personalisation line signs per day."),
    json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Simulate DS signing with forced rollovers, IS/DV renewals, CVCA/CSCA key ceremonies and CRLs on a fake clock.

    Every DS key comes through the Agency → Cơ yếu → Provider request flow; the report checks each one.
    """
    from schedules.simulation import run_simulation

    with reporting(KeyStoreError, PolicyError, ValueError):
        report = run_simulation(years, sods_per_day, policy=policy_from_env())
    if json:
        print_json(report.as_dict())
    else:
        monthly: Counter[tuple[str, str]] = Counter()
        seen: set[str] = set()
        for event in report.events:
            if event.kind in QUIET_KINDS or (event.kind in FIRST_THEN_QUIET and event.kind in seen):
                monthly[(event.at.strftime("%Y-%m"), event.kind)] += 1
                continue
            seen.add(event.kind)
            typer.echo(f"{event.at:%Y-%m-%d %H:%M}  {event.kind:<12} {event.detail}")
        for (month, kind), n in sorted(monthly.items()):
            typer.echo(f"{month}         {kind:<12} {n} {QUIET_KINDS.get(kind) or FIRST_THEN_QUIET[kind]}")
        for key in report.keys:
            # a generated key whose request was not (yet) issued has no budget
            budget = f"{key['max']:,}" if key["max"] is not None else "no budget"
            typer.echo(f"DS key {key['label']}: {key['signed']:,} signed of {budget}, "
                       f"{key['reserved_unused']} reserved unused, state {key['state']}, "
                       f"usage {key['usage_not_before']} – {key['usage_not_after']}")
        for violation in report.violations:
            err.print(f"violation: {violation}", markup=False)
        counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
        typer.echo(f"totals: {counts}")
        typer.echo(report.summary())
    if report.limit_exceeded or report.signing_stopped:
        raise typer.Exit(EXIT_INVALID)


app = typer.Typer(add_completion=False)
app.command()(simulate)

if __name__ == "__main__":
    app()

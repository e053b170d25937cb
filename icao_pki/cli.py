"""The `icao-pki` command: one entry point that mounts each area's commands."""

from __future__ import annotations

import typer

from . import __version__
from .cli_hsm import app as hsm_app
from .cli_policy import app as policy_app
from .cli_serve import serve
from .cli_simulate import simulate

app = typer.Typer(
    name="icao-pki",
    help="Lifecycle manager for Vietnam's ePassport and chip ID-card PKI (ICAO 9303, BSI TR-03110, Decree 68/2024).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(hsm_app, name="hsm")
app.add_typer(policy_app, name="policy")
app.command("serve")(serve)
app.command("simulate")(simulate)


def _mount_optional() -> None:
    """Areas built in their own modules register here; each module owns its sub-app."""
    from cvc.cli import app as cvc_app
    from lifecycle_api.cli import app as client_app

    from .cli_pa import ml_app, pa_app
    from .cli_x509 import app as x509_app
    from .cli_x509 import crl_app

    app.add_typer(cvc_app, name="cvc")
    app.add_typer(x509_app, name="x509")
    app.add_typer(crl_app, name="crl")
    app.add_typer(ml_app, name="ml")
    app.add_typer(pa_app, name="pa")
    app.add_typer(client_app, name="client")


_mount_optional()


@app.command()
def version() -> None:
    """Print the icao-pki version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

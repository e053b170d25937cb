import typer

app = typer.Typer(help="X.509 certificates: show and lint against ICAO 9303-12 and the decree.", no_args_is_help=True)
crl_app = typer.Typer(help="CSCA certificate revocation lists.", no_args_is_help=True)

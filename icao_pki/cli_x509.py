import typer

app = typer.Typer(help="X.509 certificates: show and lint against ICAO 9303-12 and the decree.", no_args_is_help=True)

import typer

app = typer.Typer(help="TR-03110 card-verifiable certificates: show and verify.", no_args_is_help=True)

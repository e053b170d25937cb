import typer

app = typer.Typer(help="The PKCS#11 key store.", no_args_is_help=True)

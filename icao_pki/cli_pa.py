import typer

ml_app = typer.Typer(help="CSCA Master Lists: show and verify.", no_args_is_help=True)
pa_app = typer.Typer(help="Passive Authentication of an EF.SOD and its data groups.", no_args_is_help=True)

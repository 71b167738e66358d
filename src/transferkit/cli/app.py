"""The Typer application every command module registers on."""
import typer

app = typer.Typer(
    name="transferkit",
    help="Transfer learning for images: fine-tune, extract features, adapt domains, learn from few or no "
         "examples, share across tasks, distil - and choose between them with evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

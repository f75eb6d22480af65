"""The ``parley`` app: every command group registered in one place.

Adding a group is a module with a ``typer.Typer`` (or a function) and one line here.
"""

from __future__ import annotations

import typer

from deploy.cli import backlog, cases, dlq, report, services, simulate, stack, token

app = typer.Typer(
    name="parley",
    help="Parley's command line: the servers, the services, cases, dead letters, imports and tokens.\n\n"
    "Connection settings come from PARLEY_KAFKA_* / PARLEY_MONGO_* (shared.settings) and the API "
    "ports of deploy/local/services.py (PARLEY_INTAKE_PORT, or PARLEY_INTAKE_URL). See docs/cli.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(services.app, name="services")
app.add_typer(cases.app, name="cases")
app.add_typer(dlq.app, name="dlq")
app.command("import")(backlog.import_)
app.command("token")(token.token)
app.command("simulate")(simulate.simulate)
app.command("report")(report.report)

if __name__ == "__main__":
    app()

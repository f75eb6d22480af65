"""``parley``: the one command line a person uses (typer + rich); see docs/cli.md.

Each command group is its own module with its own ``typer.Typer`` (``stack``, ``services``,
``cases``, ``dlq``) or function (``token``, ``import``), registered in ``main``; a later group
(``simulate``, ``report``) is one more module and one more ``add_typer`` line there.
"""

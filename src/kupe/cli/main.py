"""The `kupe` command: server, operator and client commands in one Typer app."""

from __future__ import annotations

import typer

from kupe.cli import server

app = typer.Typer(
    name="kupe",
    help="Kupe: self-hosted managed Kubernetes. Server, operator and client commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
server.register(app)


def main() -> None:
    app()

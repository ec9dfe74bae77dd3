"""Server-side commands: serve, reconciler, db upgrade and the operator's `admin` commands.

These run against KUPE_DATABASE_URL directly (server running or not); they may use server
services, unlike the client commands, which go through the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from kupe.core.errors import KupeError
from kupe.server.settings import Settings

T = TypeVar("T")

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="Operator commands (direct database access).", no_args_is_help=True)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        typer.echo(f"kupe: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except KupeError as exc:
        typer.echo(f"kupe: {exc.message}", err=True)
        raise typer.Exit(1) from None


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (KUPE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (KUPE_PORT).")] = None,
) -> None:
    """Run the API and its reconciler in the foreground."""
    import uvicorn

    from kupe.server.app import create_app
    from kupe.server.logging import configure_logging

    settings = _settings(host=host, port=port)
    configure_logging(settings)
    app = create_app(settings, bootstrap=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


def reconciler() -> None:
    """Run the reconciler alone (no HTTP API)."""
    from kupe.server.logging import configure_logging
    from kupe.server.runtime import Runtime

    settings = _settings()
    configure_logging(settings)

    async def main() -> None:
        runtime = Runtime(settings, run_reconciler=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        try:
            await stop.wait()
        finally:
            await runtime.stop()

    _run(main)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (safe to run from several replicas at once)."""
    from kupe.server.db.engine import Database

    settings = _settings()

    async def main() -> str | None:
        db = Database(settings.effective_database_url)
        try:
            await db.upgrade()
            return await db.current_revision()
        finally:
            await db.dispose()

    revision = _run(main)
    typer.echo(f"database at revision {revision}")


@admin_app.command("create-tenant")
def create_tenant(
    name: Annotated[str, typer.Argument(help="Tenant name (DNS label).")],
    display_name: Annotated[str, typer.Option("--display-name", help="Human name.")],
    contact_email: Annotated[str, typer.Option("--contact-email", help="Becomes an admin.")],
    plan: Annotated[str, typer.Option(help="Plan name.")] = "starter",
) -> None:
    """Create a tenant with its contact as admin member and an admin API key (printed once)."""
    from kupe.server.admin import Admin

    async def main() -> dict[str, Any]:
        async with Admin.open(_settings()) as admin:
            return await admin.create_tenant(name, display_name, contact_email, plan)

    _print_json(_run(main))


@admin_app.command("create-api-key")
def create_api_key(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name.")],
    role: Annotated[str, typer.Option("--role", help="admin or readonly.")],
    display_name: Annotated[
        str, typer.Option("--display-name", help="What the key is for.")
    ] = "operator-issued key",
) -> None:
    """Issue an API key for a tenant; prints the apiKey object with the raw key (shown once)."""
    from kupe.server.admin import Admin

    async def main() -> dict[str, Any]:
        async with Admin.open(_settings()) as admin:
            return await admin.create_api_key(tenant, role, display_name)

    _print_json(_run(main))


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(reconciler)
    app.add_typer(db_app, name="db")
    app.add_typer(admin_app, name="admin")

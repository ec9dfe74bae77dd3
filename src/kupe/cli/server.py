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
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from kupe.core.errors import KupeError
from kupe.server.settings import Settings, describe_errors

if TYPE_CHECKING:
    from kupe.server.admin import Admin

T = TypeVar("T")

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="Operator commands (direct database access).", no_args_is_help=True)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        typer.echo(f"kupe: invalid configuration: {describe_errors(exc)}", err=True)
        raise typer.Exit(2) from None


def _run(work: Callable[[], Awaitable[T]]) -> T:
    try:
        with _configuration_errors():
            return asyncio.run(work())  # type: ignore[arg-type]
    except KupeError as exc:
        typer.echo(f"kupe: {exc.message}", err=True)
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _configuration_errors() -> Iterator[None]:
    """A bad KUPE_PLANS_FILE (or plan setting) stops start-up with one clear line, exit 2."""
    from kupe.server.services.plan import PlanCatalogueError

    try:
        yield
    except PlanCatalogueError as exc:
        typer.echo(f"kupe: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None


def _server_settings(**overrides: Any) -> Settings:
    """Settings for a server-side command, whose files are then owner-only (see datadir)."""
    from kupe.server.datadir import secure_data_dir

    settings = _settings(**overrides)
    secure_data_dir(settings)
    return settings


def banner(settings: Settings, port: int) -> str:
    """What `kupe serve` prints once it listens: where it is and where its things are."""
    from sqlalchemy.engine import make_url

    from kupe import __version__

    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    database = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    rows = [
        ("API docs", f"{url}/docs"),
        ("Data dir", str(settings.data_dir.resolve())),
        ("Database", database),
        ("Provider", settings.provider),
    ]
    key_file = settings.data_dir / "bootstrap-api-key"
    if key_file.exists():
        rows.append(("Admin API key", f"{key_file} (tenant default)"))
    lines = [f"Kupe {__version__} is serving {url}"]
    lines += [f"  {label + ':':<15}{value}" for label, value in rows]
    if key_file.exists():
        lines += [
            "",
            f'  export KUPE_API_URL={url} KUPE_TENANT=default KUPE_API_KEY="$(cat {key_file})"',
        ]
    return "\n".join(lines) + "\n"


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (KUPE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (KUPE_PORT).")] = None,
) -> None:
    """Run the API and its reconciler in the foreground."""
    from kupe.server.app import create_app
    from kupe.server.logging import configure_logging
    from kupe.server.serving import serve_app

    settings = _server_settings(host=host, port=port)
    configure_logging(settings)
    with _configuration_errors():
        app = create_app(settings, bootstrap=True, freeze_heap=True)

    def announce(bound: int) -> None:
        sys.stdout.write(banner(settings, bound))
        sys.stdout.flush()

    serve_app(app, settings, settings.port, on_listening=announce)


def reconciler(
    port: Annotated[
        int | None,
        typer.Option(help="Serve /healthz, /readyz and /metrics here (KUPE_RECONCILER_PORT)."),
    ] = None,
) -> None:
    """Run the reconciler alone (no API; probes and metrics only with --port)."""
    from kupe.server.logging import configure_logging
    from kupe.server.runtime import Runtime

    settings = _server_settings(reconciler_port=port)
    configure_logging(settings)
    if settings.reconciler.port is not None:
        from kupe.server.app import create_reconciler_app
        from kupe.server.serving import serve_app

        serve_app(create_reconciler_app(settings), settings, settings.reconciler.port)
        return

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

    settings = _server_settings()

    async def main() -> str | None:
        db = Database(settings.effective_database_url, timeout=settings.database.timeout_seconds)
        try:
            await db.upgrade()
            return await db.current_revision()
        finally:
            await db.dispose()

    revision = _run(main)
    typer.echo(f"database at revision {revision}")


TenantArg = Annotated[str, typer.Argument(help="Tenant name.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant name.")]


def _admin(action: Callable[[Admin], Awaitable[dict[str, Any]]]) -> None:
    """Run one operator action against the configured database and print its JSON."""
    from kupe.server.admin import Admin

    settings = _server_settings()

    async def main() -> dict[str, Any]:
        async with Admin.open(settings) as admin:
            return await action(admin)

    _print_json(_run(main))


@admin_app.command("create-tenant")
def create_tenant(
    name: Annotated[str, typer.Argument(help="Tenant name (DNS label).")],
    display_name: Annotated[str, typer.Option("--display-name", help="Human name.")],
    contact_email: Annotated[str, typer.Option("--contact-email", help="Becomes an admin.")],
    plan: Annotated[str, typer.Option(help="Plan name.")] = "starter",
) -> None:
    """Create a tenant with its contact as admin member and an admin API key (printed once)."""
    _admin(lambda admin: admin.create_tenant(name, display_name, contact_email, plan))


@admin_app.command("list-tenants")
def list_tenants() -> None:
    """Every tenant with its plan, phase, members and usage: {"items": [...]}."""
    _admin(lambda admin: admin.list_tenants())


@admin_app.command("get-tenant")
def get_tenant(name: TenantArg) -> None:
    """One tenant, as GET /tenants/{tenant} shows it."""
    _admin(lambda admin: admin.get_tenant(name))


@admin_app.command("set-plan")
def set_plan(
    name: TenantArg,
    plan: Annotated[str, typer.Argument(help="Plan name.")],
    force: Annotated[
        bool, typer.Option("--force", help="Allow a plan whose limits the tenant exceeds.")
    ] = False,
) -> None:
    """Move a tenant to another plan (refused when it exceeds the plan's limits)."""
    _admin(lambda admin: admin.set_plan(name, plan, force=force))


@admin_app.command("suspend")
def suspend(name: TenantArg) -> None:
    """Suspend a tenant: reads keep working, writes answer 403; its clusters keep running."""
    from kupe.core.phases import TenantPhase

    _admin(lambda admin: admin.set_phase(name, TenantPhase.SUSPENDED))


@admin_app.command("resume")
def resume(name: TenantArg) -> None:
    """Resume a suspended tenant."""
    from kupe.core.phases import TenantPhase

    _admin(lambda admin: admin.set_phase(name, TenantPhase.ACTIVE))


@admin_app.command("delete-tenant")
def delete_tenant(
    name: TenantArg,
    cascade: Annotated[
        bool,
        typer.Option("--cascade", help="Also delete its clusters (through the reconciler)."),
    ] = False,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="Seconds to wait for the clusters to be torn down."),
    ] = 0.0,
) -> None:
    """Delete a tenant. Refused while it has clusters unless --cascade; then it stays
    Terminating until the reconciler has removed them: wait, or run this again later."""
    _admin(lambda admin: admin.delete_tenant(name, cascade=cascade, wait_seconds=wait))


@admin_app.command("create-api-key")
def create_api_key(
    tenant: TenantOpt,
    role: Annotated[str, typer.Option("--role", help="admin or readonly.")],
    display_name: Annotated[
        str, typer.Option("--display-name", help="What the key is for.")
    ] = "operator-issued key",
    expires_at: Annotated[
        datetime | None,
        typer.Option(
            "--expires-at",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"],
            help="Expiry, RFC 3339 (UTC when no offset is given).",
        ),
    ] = None,
) -> None:
    """Issue an API key for a tenant; prints the apiKey object with the raw key (shown once)."""
    expiry = _utc(expires_at) if expires_at is not None else None
    _admin(lambda admin: admin.create_api_key(tenant, role, display_name, expiry))


@admin_app.command("list-api-keys")
def list_api_keys(tenant: TenantOpt) -> None:
    """A tenant's API keys (metadata only)."""
    _admin(lambda admin: admin.list_api_keys(tenant))


@admin_app.command("revoke-api-key")
def revoke_api_key(
    key_id: Annotated[str, typer.Argument(help="Key id, ak-...")],
    tenant: TenantOpt,
) -> None:
    """Revoke an API key; it stops working at once."""
    _admin(lambda admin: admin.revoke_api_key(tenant, key_id))


@admin_app.command("add-member")
def add_member(
    email: Annotated[str, typer.Argument(help="Member email (stored lower-case).")],
    tenant: TenantOpt,
    role: Annotated[str, typer.Option("--role", help="admin or readonly.")] = "readonly",
) -> None:
    """Add a member to a tenant."""
    _admin(lambda admin: admin.add_member(tenant, email, role))


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(reconciler)
    app.add_typer(db_app, name="db")
    app.add_typer(admin_app, name="admin")

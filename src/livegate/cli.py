"""The `livegate` command: serve, simulator, demo, db, clients, apikeys, keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from livegate.config import Settings
from livegate.db.engine import Database
from livegate.db.migrate import upgrade
from livegate.demo import DEMO_DIR, cli_invocation, shown_path
from livegate.logs import setup_logging, uvicorn_log_config
from livegate.oauth import clients as client_service

app = typer.Typer(
    help="livegate: OAuth 2.0 server and API gateway for TikTok LIVE.", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations and housekeeping.", no_args_is_help=True)
clients_app = typer.Typer(help="OAuth client registrations.", no_args_is_help=True)
apikeys_app = typer.Typer(help="API keys for the webcast API.", no_args_is_help=True)
keys_app = typer.Typer(help="Server keys of the session vault.", no_args_is_help=True)
developers_app = typer.Typer(help="Developer accounts of the dashboard.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(keys_app, name="keys")
app.add_typer(developers_app, name="developers")

console = Console()
err = Console(stderr=True)


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _database(settings: Settings) -> Database:
    upgrade(settings.db_url)
    return Database(settings.db_url)


def _announce_database(settings: Settings) -> None:
    """Say on stderr which database this command works on: a command run from the wrong
    directory would otherwise quietly create an empty database of its own."""
    url = make_url(settings.db_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        typer.echo(f"livegate: database {url.render_as_string(hide_password=True)}", err=True)
        return
    path = Path(url.database).resolve()
    new = "" if path.exists() else " (new, empty)"
    typer.echo(
        f"livegate: database {shown_path(path)}{new}; LIVEGATE_DATA_DIR or "
        "LIVEGATE_DATABASE_URL chooses another",
        err=True,
    )
    demo = (DEMO_DIR / "livegate.db").resolve()
    if demo.exists() and demo != path:
        typer.echo(
            f"livegate: the demo's database is {DEMO_DIR}/livegate.db: to use it, run "
            f"LIVEGATE_DATA_DIR={DEMO_DIR} {cli_invocation()} ...",
            err=True,
        )


def _admin_database(settings: Settings | None = None) -> Database:
    """The database of the admin commands (clients, apikeys, developers, keys, db purge)."""
    settings = settings or _settings()
    _announce_database(settings)
    return _database(settings)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Worker processes (default: LIVEGATE_WORKERS, else one per core)."
        ),
    ] = None,
) -> None:
    """Run the gateway (migrations are applied first, once)."""
    from livegate.serving import serve as run

    settings = _settings(host=host, port=port)
    run(settings, workers or settings.workers or os.cpu_count() or 1)


@app.command()
def simulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
) -> None:
    """Run the TikTok simulator alone."""
    from livegate.simulator.app import create_simulator_app

    setup_logging("info")
    uvicorn.run(create_simulator_app(), host=host, port=port, log_config=uvicorn_log_config())


@app.command()
def demo(
    port: Annotated[
        int, typer.Option(help="Gateway port; the simulator and sample app take the next two.")
    ] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Gateway + simulator + a sample app, on the embedded defaults."""
    from livegate.demo.runner import run_demo

    run_demo(host, port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration."""
    settings = _settings()
    upgrade(settings.db_url)
    console.print("database is up to date")


@db_app.command("purge")
def db_purge() -> None:
    """Delete expired codes, tokens, wrappings and pending logins."""
    from livegate.housekeeping import purge_all

    counts = purge_all(_admin_database())
    _print_json(counts)


def _client_dict(row: Any, secret: str | None = None) -> dict[str, Any]:
    data = client_service.public_info(row)
    data["created_at"] = row.created_at.isoformat()
    if secret is not None:
        data["client_secret"] = secret
    return data


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="The app's name, shown on the consent page.")],
    redirect_uri: Annotated[
        list[str], typer.Option(help="A registered redirect URI (repeatable).")
    ],
    scope: Annotated[
        str, typer.Option(help="Space-separated scopes the client may ask for.")
    ] = "webcast:fetch",
    public: Annotated[
        bool, typer.Option("--public", help="A public client: no secret, PKCE required.")
    ] = False,
    description: Annotated[str, typer.Option(help="Shown on the consent page.")] = "",
    logo_url: Annotated[str | None, typer.Option(help="Logo shown on the consent page.")] = None,
    homepage_url: Annotated[str | None, typer.Option(help="The app's homepage.")] = None,
    theme: Annotated[str, typer.Option(help="auto, dark or light.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a client; its secret is printed once."""
    database = _admin_database()
    try:
        with database.session() as session:
            new = client_service.create_client(
                session,
                name=name,
                redirect_uris=redirect_uri,
                scope=scope,
                public=public,
                description=description,
                logo_url=logo_url,
                homepage_url=homepage_url,
                theme=theme,
            )
            data = _client_dict(new.row, new.client_secret)
    except client_service.ClientError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        _print_json(data)
        return
    console.print(f"client_id:     {data['client_id']}")
    if new.client_secret:
        console.print(f"client_secret: {new.client_secret}  (shown once)")


@clients_app.command("list")
def clients_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List every client."""
    with _admin_database().session() as session:
        rows = [_client_dict(r) for r in client_service.list_clients(session)]
    if as_json:
        _print_json(rows)
        return
    table = Table("client_id", "name", "type", "scopes", "redirect URIs")
    for r in rows:
        table.add_row(
            r["client_id"],
            r["name"],
            r["client_type"],
            " ".join(r["supported_scopes"]),
            "\n".join(r["redirect_uris"]),
        )
    console.print(table)


def _require_client(session: Any, client_id: str) -> Any:
    row = client_service.get_client(session, client_id)
    if row is None:
        err.print(f"error: no client {client_id}")
        raise typer.Exit(1)
    return row


@clients_app.command("show")
def clients_show(client_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one client."""
    with _admin_database().session() as session:
        data = _client_dict(_require_client(session, client_id))
    _print_json(data) if as_json else console.print(data)


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: str, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Issue a new secret; the old one works for LIVEGATE_SECRET_GRACE_PERIOD seconds."""
    settings = _settings()
    with _admin_database(settings).session() as session:
        row = _require_client(session, client_id)
        try:
            secret = client_service.rotate_secret(session, row, settings.secret_grace_period)
        except client_service.ClientError as exc:
            err.print(f"error: {exc}")
            raise typer.Exit(2) from exc
        expires = row.previous_secret_expires_at
    data = {"client_id": client_id, "client_secret": secret, "previous_secret_expires_at": expires}
    _print_json(data) if as_json else console.print(data)


@clients_app.command("delete")
def clients_delete(
    client_id: str, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Delete a client; every grant and token it has dies at once."""
    with _admin_database().session() as session:
        client_service.delete_client(session, _require_client(session, client_id))
    _print_json({"deleted": client_id}) if as_json else console.print(f"deleted {client_id}")


@apikeys_app.command("create")
def apikeys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")] = "",
    client_id: Annotated[
        str | None, typer.Option(help="The OAuth client the key belongs to.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key; it is printed once."""
    from livegate.apikeys import create_api_key

    with _admin_database().session() as session:
        client_pk = _require_client(session, client_id).id if client_id else None
        key, row = create_api_key(session, name=name, client_pk=client_pk)
        data = {"id": row.id, "api_key": key, "name": row.name, "client_id": client_id}
    _print_json(data) if as_json else console.print(f"api_key: {key}  (shown once)")


@developers_app.command("create")
def developers_create(
    email: Annotated[str, typer.Option(help="The developer's email, used to sign in.")],
    password: Annotated[
        str | None, typer.Option(help="The password (prefer --password-stdin).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="An admin sees every client.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a developer account for the dashboard (the first one usually with --admin)."""
    import sys

    from livegate.dashboard.passwords import MIN_LENGTH
    from livegate.dashboard.service import DashboardError, create_developer
    from livegate.dashboard.strings import STRINGS

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        err.print("error: give --password-stdin or --password")
        raise typer.Exit(2)
    try:
        with _admin_database().session() as session:
            row = create_developer(session, email, password, is_admin=admin)
            data = {"id": row.id, "email": row.email, "admin": row.is_admin}
    except DashboardError as exc:
        err.print("error: " + STRINGS.get(exc.args[0], exc.args[0]).format(n=MIN_LENGTH))
        raise typer.Exit(2) from exc
    _print_json(data) if as_json else console.print(f"created developer {data['email']}")


@developers_app.command("list")
def developers_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List developer accounts."""
    from sqlalchemy import select

    from livegate.db.models import Developer

    with _admin_database().session() as session:
        rows = [
            {"id": d.id, "email": d.email, "admin": d.is_admin, "created_at": d.created_at}
            for d in session.scalars(select(Developer).order_by(Developer.id))
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "email", "admin", "created")
    for r in rows:
        table.add_row(
            str(r["id"]), str(r["email"]), "yes" if r["admin"] else "", str(r["created_at"])
        )
    console.print(table)


@keys_app.command("status")
def keys_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """How many session wrappings still depend on each server key."""
    from livegate.vault import Vault

    settings = _settings()
    with _admin_database(settings).session() as session:
        rows = Vault(settings.server_keys).key_status(session)
    data = [
        {"key_id": kid, "wrappings": n, "configured": conf, "position": i if conf else None}
        for i, (kid, n, conf) in enumerate(rows)
    ]
    if as_json:
        _print_json(data)
        return
    table = Table("key id", "position", "wrappings", "configured")
    for d in data:
        table.add_row(
            str(d["key_id"]),
            "newest" if d["position"] == 0 else str(d["position"]),
            str(d["wrappings"]),
            "yes" if d["configured"] else "NO",
        )
    console.print(table)


if __name__ == "__main__":
    app()

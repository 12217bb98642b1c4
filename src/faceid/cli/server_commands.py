"""``faceid serve`` and the account commands: users and API keys, for when nobody can log in yet."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import TYPE_CHECKING

from faceid.cli.common import CommandError, add_json_option, add_store_location, echo, print_json
from faceid.settings import current
from faceid.thresholds import MAX_UPLOAD_BYTES

if TYPE_CHECKING:
    from faceid.store.accounts import Accounts
    from faceid.store.database import Database

log = logging.getLogger(__name__)


def _accounts(args: argparse.Namespace) -> tuple[Database, Accounts]:
    """The store's database (closed at the end of a ``with`` block) and its accounts; account work opens no store,
    so loads no model."""
    from faceid.store.accounts import Accounts
    from faceid.store.config import resolve_data_dir, resolve_database_url
    from faceid.store.database import open_database

    database = open_database(resolve_database_url(args.db, resolve_data_dir(args.data_dir)))
    return database, Accounts(database)


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from faceid.server import ServerConfig, create_app

    if args.port < 0 or args.port > 65535:
        raise CommandError("--port must be between 0 and 65535")
    if args.max_upload_mb <= 0:
        raise CommandError("--max-upload-mb must be positive")
    trusted_proxies = ",".join(p.strip() for p in args.forwarded_allow_ips.split(",") if p.strip())
    if args.mqtt:
        from faceid.integrations import MqttTarget

        MqttTarget.parse(args.mqtt)  # a bad URL ends here, with exit code 2
    config = ServerConfig(
        data_dir=args.data_dir,
        db=args.db,
        detector=args.detector,
        device=args.device,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        secure_cookies=True if args.secure_cookies else None,
        warm_up=not args.no_warm_up,
        mqtt=args.mqtt,
        public_url=args.public_url,
    )
    logging.getLogger("faceid").setLevel(min(logging.getLogger("faceid").getEffectiveLevel(), logging.INFO))
    # The first admin is created here rather than by the app, so that its password is printed, not logged.
    database, accounts = _accounts(args)
    with database:
        generated = accounts.ensure_admin(config.resolved_admin_password())
    app = create_app(config)
    services = app.state.services
    host = args.host
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    echo(f"faceid {services.store!r}")
    echo(f"Open http://{shown}:{args.port}/ in a browser (API: http://{shown}:{args.port}/api/docs).")
    if generated:
        echo(f"First start: log in as 'admin' with the password {generated}")
        echo("(shown only this once; change it under 'My account').")
    elif services.accounts.count_users() == 1 and services.accounts.find_user("admin") is not None:
        source = "FACEID_ADMIN_PASSWORD" if config.resolved_admin_password() else "the first start's output"
        echo(f"Log in as 'admin' with the password from {source}.")
    uvicorn.run(
        app,
        host=host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        # X-Forwarded-For/-Proto say who the client is; only a proxy named here may say it (docs/server.md).
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        timeout_graceful_shutdown=3,
    )
    return 0


def _cmd_user_list(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        users = accounts.list_users()
    if args.json:
        print_json([u.to_dict() for u in users])
        return 0
    for user in users:
        state = " (disabled)" if user.disabled else ""
        echo(f"{user.id:>4}  {user.username:<24} {user.role}{state}")
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = current().new_password
    if password:
        return password
    if not sys.stdin.isatty():
        raise CommandError("give the password with --password-stdin or FACEID_NEW_PASSWORD")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("the passwords differ")
    return first


def _cmd_user_add(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        user = accounts.create_user(args.username, _password(args), args.role)
    echo(f"created {user.username} ({user.role})")
    return 0


def _cmd_user_password(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        user = accounts.find_user(args.username)
        if user is None:
            raise CommandError(f"no user named {args.username!r}")
        accounts.update_user(user.id, password=_password(args), disabled=False if args.enable else None)
    echo(f"password of {user.username} changed; their sessions ended")
    return 0


def _cmd_user_role(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        user = accounts.find_user(args.username)
        if user is None:
            raise CommandError(f"no user named {args.username!r}")
        accounts.update_user(user.id, role=args.role)
    echo(f"{user.username} is now {args.role}")
    return 0


def _cmd_user_remove(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        user = accounts.find_user(args.username)
        if user is None:
            raise CommandError(f"no user named {args.username!r}")
        accounts.delete_user(user.id)
    echo(f"deleted {user.username}")
    return 0


def _cmd_key_create(args: argparse.Namespace) -> int:
    from faceid.store.accounts import key_scopes

    database, accounts = _accounts(args)
    with database:
        key = accounts.create_key(args.name, key_scopes(args.scope, args.preset))
    if args.json:
        print_json(key.to_dict())
    else:
        echo(f"{key.key}")
        echo(f"(API key {key.name!r}, scopes {', '.join(key.scopes)}; shown only this once)")
    return 0


def _cmd_key_list(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        keys = accounts.list_keys()
    if args.json:
        print_json([k.to_dict() for k in keys])
        return 0
    for key in keys:
        state = "active" if key.active else "revoked"
        echo(f"{key.id:>4}  fid_{key.prefix}_…  {key.name:<24} {','.join(key.scopes):<28} {state}")
    return 0


def _cmd_key_revoke(args: argparse.Namespace) -> int:
    database, accounts = _accounts(args)
    with database:
        key = accounts.revoke_key(args.key_id)
    echo(f"revoked {key.name}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from faceid.store.accounts import DEFAULT_KEY_PRESET, KEY_PRESETS, ROLES, SCOPES
    from faceid.vision.detect import DETECTORS, PHOTO_DETECTOR

    serve = subparsers.add_parser("serve", help="run the web app and REST API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_store_location(serve)
    serve.add_argument(
        "--detector",
        default=PHOTO_DETECTOR,
        choices=sorted(DETECTORS),
        help=f"face detector for posted photos (default {PHOTO_DETECTOR}: the photo pipeline)",
    )
    serve.add_argument("--device", default="cpu", help="ONNX Runtime device: cpu, cuda, tensorrt")
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=MAX_UPLOAD_BYTES / 2**20,
        help=f"largest request body in MiB (default {MAX_UPLOAD_BYTES / 2**20:g})",
    )
    serve.add_argument("--secure-cookies", action="store_true", help="always mark cookies Secure (https only)")
    serve.add_argument(
        "--forwarded-allow-ips",
        default="",
        metavar="ADDRESSES",
        help="reverse proxies trusted to set X-Forwarded-For/-Proto: comma-separated addresses or networks, "
        "e.g. 127.0.0.1 (default: none, the headers are ignored)",
    )
    serve.add_argument("--no-warm-up", action="store_true", help="load models on the first request instead")
    serve.add_argument(
        "--mqtt", metavar="URL", help="publish events to this broker: mqtt://user:pass@host:1883/prefix (saved)"
    )
    serve.add_argument("--public-url", help="this server's address as others reach it, for links in events (saved)")
    serve.set_defaults(handler=_cmd_serve)

    user = subparsers.add_parser("user", help="manage the server's users")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    listing = user_sub.add_parser("list", help="list users")
    add_store_location(listing)
    add_json_option(listing)
    listing.set_defaults(handler=_cmd_user_list)
    for name, handler, help_text in (
        ("add", _cmd_user_add, "create a user"),
        ("password", _cmd_user_password, "set a user's password (ends their sessions)"),
        ("role", _cmd_user_role, "change a user's role"),
        ("remove", _cmd_user_remove, "delete a user"),
    ):
        parser = user_sub.add_parser(name, help=help_text)
        parser.add_argument("username")
        add_store_location(parser)
        if name in ("add", "role"):
            parser.add_argument(
                "--role" if name == "add" else "role",
                choices=ROLES,
                **({"default": "viewer"} if name == "add" else {}),
            )
        if name in ("add", "password"):
            parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if name == "password":
            parser.add_argument("--enable", action="store_true", help="also re-enable a disabled user")
        parser.set_defaults(handler=handler)

    key = subparsers.add_parser("apikey", help="manage API keys for devices and scripts")
    key_sub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    create = key_sub.add_parser("create", help="create a key (printed once)")
    create.add_argument("name")
    presets = "; ".join(f"{name}: {', '.join(scopes)}" for name, scopes in KEY_PRESETS.items())
    create.add_argument(
        "--preset",
        choices=sorted(KEY_PRESETS),
        default=None,
        help=f"a named set of scopes ({presets}); without --preset or --scope: {DEFAULT_KEY_PRESET}, "
        "what a camera or a connected monitor needs",
    )
    create.add_argument("--scope", action="append", choices=SCOPES, help="repeatable; added to --preset's")
    add_store_location(create)
    add_json_option(create)
    create.set_defaults(handler=_cmd_key_create)
    key_list = key_sub.add_parser("list", help="list keys")
    add_store_location(key_list)
    add_json_option(key_list)
    key_list.set_defaults(handler=_cmd_key_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", type=int)
    add_store_location(revoke)
    revoke.set_defaults(handler=_cmd_key_revoke)

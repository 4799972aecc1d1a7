"""The ``hearth`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway import __version__
from gateway.errors import ConfigError, ConfigProblem, HearthError
from gateway.i18n import available_languages

if TYPE_CHECKING:
    from gateway.scenes.profile import Parameter


def _load(path: str | None):  # type: ignore[no-untyped-def]
    from gateway.config import load_config

    return load_config(path)


def _setup_logging(level: str) -> None:
    from gateway.logsafe import SafeFormatter

    handler = logging.StreamHandler(sys.stderr)
    # Escapes what the network put in a message (a device's name with ESC or a line break in it).
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import Gateway, run_on_event_loop, shorten_time_slice, tune_malloc

    try:
        config = _load(args.config)
    except ConfigError:
        if args.config is None:
            raise
        # Say everything wrong with the file, not only the core's first part (only when it is wrong: the
        # full check imports every installed adapter, which a good start does not need).
        _checked_config(Path(args.config), profiles=False)
        raise
    _setup_logging(config.gateway.log_level)
    tune_malloc()
    shorten_time_slice(config.gateway.loop_slice_us)  # this thread runs the loop; the others start after
    run_on_event_loop(Gateway(config).run(), config.gateway.event_loop)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.sim.demo import DemoOptions, run_demo

    if not args.speed > 0:
        print("hearth demo: --speed must be > 0", file=sys.stderr)
        return 2
    if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", args.start):
        print("hearth demo: --start must be a time of day, HH:MM", file=sys.stderr)
        return 2
    bad_morning = None if args.bad_morning_day < 0 else args.bad_morning_day
    options = DemoOptions(speed=args.speed, port=args.port, data_dir=Path(args.data_dir), seed=args.seed,
                          start=args.start, bad_morning_day=bad_morning, mqtt_port=args.mqtt_port,
                          log_level=args.log_level)
    if args.capture:
        return _demo_capture(options, Path(args.capture), args.hours)
    _setup_logging(options.log_level)
    return asyncio.run(run_demo(options, sys.stdout))


def _demo_capture(options, path: Path, hours: float) -> int:  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    from gateway.sim import HouseModel, demo_house, write_capture
    from gateway.sim.demo import local_zone_name, start_epoch

    tz = ZoneInfo(local_zone_name())
    model = HouseModel(demo_house(), start=start_epoch(options.start, tz), tz=tz, seed=options.seed,
                       bad_morning_day=options.bad_morning_day)
    count = write_capture(model, path, duration_s=hours * 3600)
    print(f"{count} messages ({hours:g} simulated hours) written to {path}", file=sys.stderr)
    return 0


def _toml_or_none(text: str) -> dict[str, Any] | None:
    import tomllib

    from gateway.tomlloc import loads_toml

    try:
        return loads_toml(text)
    except tomllib.TOMLDecodeError:
        return None


def _checked_config(path: Path, *, profiles: bool = True) -> tuple[Any, list[Any]]:
    """The config at ``path`` and its profiles, or a ConfigError with every problem of the file at once, in
    the file's order: the core's, the adapters' (their settings and the files they read) and the profiles'."""
    from gateway.config import Config, load_config, parse_config
    from gateway.supervisor import adapter_config_problems, discover_adapters

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        load_config(path)  # says what is wrong with the file itself
        raise
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = parse_config(text, str(path))
        sections = config.adapters
    except ConfigError as err:
        problems += err.problems
        raw = _toml_or_none(text)
        adapters = raw.get("adapters") if raw else None
        sections = {k: v for k, v in adapters.items() if isinstance(v, dict)} if isinstance(adapters, dict) else {}
    problems += adapter_config_problems(str(path), text, sections, discover_adapters())
    loaded: list[Any] = []
    if config is not None and profiles:
        from gateway.scenes.setup import load_profiles

        try:
            loaded = load_profiles(config, text)
        except ConfigError as err:
            problems += err.problems
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.file != str(path), p.file, p.line or 0)))
    return config, loaded


def cmd_config_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    config, profiles = _checked_config(path)
    from gateway.scenes.explain import area_parameter_warnings

    # Warnings, not errors: a device may also get its area from its adapter or the web UI.
    for warning in area_parameter_warnings(profiles, config.areas.values(), f"[areas] of {path}"):
        print(f"warning: {warning}", file=sys.stderr)
    scenes = sum(len(p.scenes) for p in profiles)
    print(f"{path}: ok ({len(profiles)} profiles, {scenes} scenes)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.replay import replay_command

    path = Path(args.capture)
    if not path.is_file():
        print(f"hearth replay: no such file: {path}", file=sys.stderr)
        return 2
    config = _load(args.config) if args.config else None
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    # An adapter that fails is listed in the replay's errors (and makes it exit 1): not logged twice.
    logging.getLogger("hearth.supervisor").setLevel(logging.CRITICAL)
    return replay_command(path, config, args.profile, as_json=args.json, every_run=args.traces,
                          explain=args.explain, at=args.at, strict=args.strict, language=args.language,
                          out=sys.stdout, err=sys.stderr)


def cmd_plugin_new(args: argparse.Namespace) -> int:
    from gateway.devkit.scaffold import run

    return run(args)


def cmd_plugin_check(args: argparse.Namespace) -> int:
    from gateway.devkit.conformance import run

    return run(args)


def cmd_definition_check(args: argparse.Namespace) -> int:
    from gateway.devkit.definitions import run

    return run(args)


def cmd_mqtt_secure(args: argparse.Namespace) -> int:
    from gateway.brokersetup import write_broker_files

    folder = Path(args.out)
    clients = write_broker_files(folder, args.client or [], listen=args.listen, port=args.port, force=args.force)
    hints = {
        "hearth": "Hearth's config:  [mqtt] username = \"hearth\", password = \"{p}\"",
        "zigbee2mqtt": "Zigbee2MQTT's configuration.yaml:  mqtt: {{ user: zigbee2mqtt, password: '{p}' }}",
        "tasmota": "each Tasmota's console:  Backlog MqttUser tasmota; MqttPassword {p}",
        "shelly": "each Shelly's web page (Settings, MQTT): user shelly, password {p}",
    }
    print(f"wrote {folder.resolve()}/mosquitto.conf, passwd (mode 0600) and acl; start the broker with")
    print(f"  mosquitto -c {folder.resolve()}/mosquitto.conf")
    print("(a Mosquitto run as its own user must be able to read passwd: chown it to that user).")
    print("\nThe passwords, shown this once (the files keep only their hashes):")
    for client in clients:
        print(f"  {client.name:<14} {client.password}   topics: {', '.join(client.topics)}")
        hint = hints.get(client.name)
        if hint:
            print("    " + hint.format(p=client.password))
    print("\nAnonymous clients are refused; each bridge may read and write its own topics only.")
    return 0


def cmd_profile_list(args: argparse.Namespace) -> int:
    from gateway.scenes.profile import load_profile, shipped_profiles

    config = _load(args.config) if args.config else None
    dirs = list(config.scenes.profile_dirs) if config else []
    found = {path.stem: path for d in dirs for path in sorted(Path(d).glob("*.toml"))}
    for name, path in shipped_profiles().items():
        found.setdefault(name, path)
    for name, path in sorted(found.items()):
        try:
            profile = load_profile(path, _placeholder_params(path))
            summary = (profile.description.strip().splitlines() or [""])[0]
            print(f"{name:<24} {len(profile.scenes)} scenes  {summary}")
        except ConfigError as err:
            print(f"{name:<24} BROKEN: {err.problems[0]}")
    return 0


def _placeholder_params(path: Path) -> dict[str, object]:
    from gateway.scenes.check import placeholder_params

    return placeholder_params(path)


def cmd_profile_show(args: argparse.Namespace) -> int:
    from gateway.scenes.profile import find_profile, load_profile
    from gateway.scenes.setup import profile_use

    config = _load(args.config) if args.config else None
    path = find_profile(args.name, list(config.scenes.profile_dirs) if config else [])
    use = profile_use(config, args.name, path)
    if use is not None and config is not None:
        profile = load_profile(path, use.params, params_source=f"{config.source} [[profiles]] {use.use}",
                               scene_settings=use.scene_settings())
    else:
        profile = load_profile(path, _placeholder_params(path))
    print(f"{profile.name} (schema {profile.version}) — {path}")
    if profile.description:
        print(profile.description.strip())
    print("\nparameters:")
    for name, spec in profile.parameters.items():
        source = "config" if use and name in use.params else ("default" if spec.default is not None else "REQUIRED")
        note = f"  {spec.description}" if spec.description else ""
        print(f"  {name:<22} {spec.type:<15} = {_param_text(spec, profile.values.get(name))}  ({source}){note}")
    print("\nscenes:")
    for scene in profile.scenes:
        triggers = ", ".join(t.kind for t in scene.triggers)
        actions = ", ".join(a.kind for a in scene.actions)
        off = "  (disabled)" if not scene.enabled else ""
        print(f"  {profile.name}.{scene.id:<28} {scene.name}  [triggers: {triggers}; actions: {actions}]{off}")
        override = profile.overrides.get(scene.id)
        if override is None:
            continue
        # What [profiles.scenes.<id>] of the config changed: the scene as shown is the changed one.
        if override.enabled is not None:
            print(f"      config: {'enabled' if override.enabled else 'disabled'}")
        for name, value in override.values.items():
            print(f"      config: {name} = {_param_text(profile.parameters[name], value)} for this scene "
                  f"(profile: {_param_text(profile.parameters[name], profile.values.get(name))})")
        if override.conditions:
            added = scene.conditions[len(scene.conditions) - override.conditions:]
            print(f"      config: + {override.conditions} condition{'s' if override.conditions != 1 else ''}: "
                  + ", ".join(c.kind for c in added))
    return 0


def _param_text(spec: Parameter, value: object) -> str:
    """A parameter's value as ``profile show`` prints it: durations in minutes, with its unit."""
    if spec.type == "duration" and isinstance(value, (int, float)):
        return f"{value / 60:g} min"
    return f"{value}{f' {spec.unit}' if spec.unit else ''}"


def cmd_profile_check(args: argparse.Namespace) -> int:
    from gateway.scenes.check import check_profile_command

    return check_profile_command(args.profile, args.house, args.config, sys.stdout)


def cmd_capture(args: argparse.Namespace) -> int:
    from gateway.capture import capture

    config = _load(args.config)
    settings = config.mqtt
    if args.host or args.port:
        settings = settings.model_copy(update={k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    _setup_logging("warning")
    count = asyncio.run(
        capture(settings, Path(args.out), args.topic or ["#"], duration_s=args.duration, max_messages=args.count,
                status=sys.stderr)
    )
    print(f"{count} messages written to {args.out}", file=sys.stderr)
    return 0


def _data_files(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The config ``hearth run`` would use with the same --config, and a line saying where its data is."""
    import os

    config = _load(args.config)
    where = f"--config {args.config}" if args.config else "no config file: the defaults"
    if config.api.token_file is not None:
        source = f"[api] token_file of {config.source}"
    elif config.gateway.data_dir is not None:
        source = f"[gateway] data_dir of {config.source}"
    elif os.environ.get("HEARTH_DATA_DIR"):
        source = "$HEARTH_DATA_DIR"
    else:
        source = "the default data directory ($XDG_DATA_HOME/hearth or ~/.local/share/hearth)"
    return config, f"({where}; the data directory from {source})"


def parse_expiry(text: str | None, now: float | None = None) -> float | None:
    """``7d``, ``12h``, ``90m``, or a local date/time ``2026-12-31`` / ``2026-12-31T18:00``: epoch seconds."""
    import time
    from datetime import datetime

    if text is None:
        return None
    now = time.time() if now is None else now
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([dhm])", text.strip())
    if match:
        return now + float(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HearthError(f"--expires {text!r}: give a duration (7d, 12h, 90m) or a date (2026-12-31)") from None
    return when.timestamp()


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.api.auth import token_command

    config, source = _data_files(args)
    print(f"Token file: {config.token_file} {source}", file=sys.stderr)
    expires = parse_expiry(args.expires)
    status = token_command(args.action, config.token_file, args.name, sys.stdout, role=args.role, expires=expires)
    if status == 0 and args.action in ("create", "revoke"):
        detail = {"role": args.role, "expires": expires} if args.action == "create" else None
        _audit_cli(config, f"token.{args.action}", args.name, detail)
    return status


def _audit_cli(config: Any, action: str, target: str | None, detail: dict[str, Any] | None = None) -> None:
    """An account or token changed from the command line goes into the audit log, as one made in the UI does
    (with the operating-system user who ran the command; written beside a running gateway too)."""
    import time

    from gateway.personal import append_audit_offline, cli_actor
    from gateway.store import AuditEntry

    append_audit_offline(config.store_path, AuditEntry(time.time(), action, "cli", cli_actor(), None, target,
                                                       detail, "local"))


def cmd_matter(args: argparse.Namespace) -> int:
    from gateway.matter.cli import pair_command, reset_command

    config, source = _data_files(args)
    print(f"Data directory: {config.data_dir} {source}", file=sys.stderr)
    if args.action == "pair":
        return pair_command(config.matter, config.data_dir, sys.stdout, as_json=args.json)
    return reset_command(config.data_dir, sys.stdout, yes=args.yes)


def _read_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise HearthError("no password on standard input")
        return password
    import getpass

    if not sys.stdin.isatty():
        raise HearthError("no terminal to ask for the password on: use --password-stdin")
    first = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("Again: ") != first:
        raise HearthError("the two passwords differ; nothing changed")
    return first


def _contact_arg(args: argparse.Namespace, config: Any) -> str | None:
    """``--contact``: a notification contact of the config (``none``: unlink)."""
    from gateway.api.accounts import AccountError

    if args.contact is None or args.contact.lower() == "none":
        return None
    if args.contact not in config.notify:
        known = ", ".join(sorted(config.notify)) or "none: add a [notify.NAME] table to the config"
        raise AccountError(f"no notification contact {args.contact!r} in the config (contacts: {known})")
    return str(args.contact)


def cmd_user(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from gateway.api.accounts import ROLES, AccountError, SessionStore, UserStore
    from gateway.api.auth import TokenStore

    config, source = _data_files(args)
    users_file = config.token_file.with_name("users.json")
    print(f"Accounts file: {users_file} {source}", file=sys.stderr)
    users = UserStore(users_file)

    def when(t: float | None) -> str:
        return "never" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")

    def end_sessions(name: str) -> None:
        sessions = SessionStore(config.token_file.with_name("sessions.json"), users, TokenStore(config.token_file))
        sessions.end_all("user", name)

    try:
        if args.action == "list":
            listed = users.list()
            if not listed:
                print("No accounts yet. Make the owner's: hearth user add NAME --role owner")
                return 0
            width = max(4, *(len(u.name) for u in listed))
            print(f"{'NAME':<{width}}  {'ROLE':<9}  {'CREATED':<20}  EXPIRES")
            for user in listed:
                print(f"{user.name:<{width}}  {user.role:<9}  {when(user.created):<20}  {when(user.expires)}")
            return 0
        if not args.name:
            print(f"Say which user: hearth user {args.action} NAME", file=sys.stderr)
            return 2
        if args.action == "add":
            if args.role not in ROLES:
                print(f"Give a role: --role {{{','.join(ROLES)}}}", file=sys.stderr)
                return 2
            contact = _contact_arg(args, config)
            user = users.add(args.name, args.role, _read_password(args, args.name),
                             expires=parse_expiry(args.expires))
            if contact is not None:
                user = users.set_contact(user.name, contact)
            until = f" until {when(user.expires)}" if user.expires is not None else ""
            print(f"Added {user.name} ({user.role}{until}). Log in at the web UI with this name and password.")
            _audit_cli(config, "user.create", user.name, {"role": user.role, "expires": user.expires})
            return 0
        if args.action == "passwd":
            if users.get(args.name) is None:
                raise AccountError(f"no user {args.name!r} (see: hearth user list)")
            users.set_password(args.name, _read_password(args, args.name))
            end_sessions(args.name)
            _audit_cli(config, "user.password", args.name)
            print(f"Changed {args.name}'s password; their browser sessions have ended.")
            return 0
        if args.action == "set":
            if args.contact is not None:
                contact = _contact_arg(args, config)
                user = users.set_contact(args.name, contact)
                _audit_cli(config, "user.contact", user.name, {"contact": contact})
                print(f"{user.name} is the notification contact {contact!r}: they set its quiet hours and channels"
                      if contact else f"{user.name} is no longer a notification contact")
                if args.role is None and args.expires is None:
                    return 0
            expires = parse_expiry(args.expires) if args.expires not in (None, "never") else None
            user = users.update(args.name, role=args.role,
                                expires="keep" if args.expires is None else expires)
            end_sessions(args.name)
            _audit_cli(config, "user.change", user.name, {"role": user.role, "expires": user.expires})
            print(f"{user.name}: {user.role}, access until {when(user.expires)}; their browser sessions have ended.")
            return 0
        if args.action == "remove":
            if not users.remove(args.name):
                print(f"No user {args.name!r} (see: hearth user list).", file=sys.stderr)
                return 1
            end_sessions(args.name)
            _audit_cli(config, "user.remove", args.name)
            print(f"Removed {args.name}; their browser sessions have ended.")
            return 0
    except AccountError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


def cmd_data(args: argparse.Namespace) -> int:
    """``hearth data export|delete|audit``: personal data (ETSI EN 303 645 5.11; see gateway.personal)."""
    import sqlite3
    import time
    from datetime import UTC, datetime

    from gateway.personal import DataError, append_audit_offline, cli_actor, delete_offline, write_export
    from gateway.store import AuditEntry, StoreInUseError

    config, source = _data_files(args)
    db_path = config.store_path
    print(f"Database: {db_path} {source}", file=sys.stderr)
    if args.action == "export":
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        out = Path(args.out or f"hearth-data-{stamp}.zip")
        try:
            counts = write_export(out, db_path=db_path, token_file=config.token_file, config=config,
                                  exported_by=f"cli {cli_actor()}")
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        append_audit_offline(db_path, AuditEntry(time.time(), "data.export", "cli", cli_actor(), None, str(out),
                                                 {"records": counts}, "local"))
        print(f"Wrote {out} (mode 0600): " + ", ".join(f"{name} {n}" for name, n in counts.items()))
        return 0
    if args.action == "delete":
        everything = bool(args.all)
        what = ("EVERYTHING: devices, their state and history, alerts, traces, the audit log, every user, session "
                "and token (the config file stays)") if everything else (
                "the history: state changes, resolved alerts, scene traces, the resident's check-ins, audit "
                "entries older than now (devices, users and open alerts stay)")
        if not args.yes:
            if not sys.stdin.isatty():
                print("hearth data delete: not a terminal to confirm on; add --yes", file=sys.stderr)
                return 2
            answer = input(f"Delete {what} from {db_path}? Type 'delete' to go on: ")
            if answer.strip() != "delete":
                print("Nothing deleted.")
                return 1
        try:
            counts = asyncio.run(delete_offline(config, everything=everything))
        except StoreInUseError:
            print("hearth data delete: the gateway is running (it has the database open). Stop it first, or "
                  "delete the history through it: POST /api/data/delete {\"scope\": \"history\", "
                  "\"confirm\": \"delete personal data\"} (owner only). Nothing was deleted.", file=sys.stderr)
            return 1
        print("Deleted (one transaction, then VACUUM): " + (", ".join(
            f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n and k != "alerts_kept_open") or "nothing"))
        if counts.get("alerts_kept_open"):
            print(f"Kept {counts['alerts_kept_open']} open or acknowledged alerts (an escalation in progress).")
        return 0
    # audit
    from gateway.personal import _connect_read_only

    conn = _connect_read_only(db_path)
    if conn is None:
        print("No database yet: nothing audited.")
        return 0
    try:
        from gateway.store import read_audit_rows

        try:
            rows = read_audit_rows(conn, args.limit, action=args.action_filter)
        except sqlite3.Error as err:
            print(f"No audit log in {db_path} ({err}); it starts with the next start of the gateway.")
            return 0
    finally:
        conn.close()
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    for row in reversed(rows):  # oldest first, the newest at the bottom where the eye lands
        when = datetime.fromtimestamp(row["t"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = f"{row['actor_kind'] or '-'} {row['actor'] or '-'}" + (f" ({row['role']})" if row["role"] else "")
        detail = orjson.dumps(row["detail"]).decode() if row["detail"] else ""
        print(f"{when}  {row['action']:<18} {row['target'] or '-':<24} {who:<28} {row['address'] or '-':<15} {detail}")
    if not rows:
        print("The audit log is empty.")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from gateway.backup import backup_command

    config, source = _data_files(args)
    print(f"Database: {config.store_path} {source}", file=sys.stderr)
    return backup_command(config, Path(args.file) if args.file else None, print)


def cmd_restore(args: argparse.Namespace) -> int:
    from gateway.backup import restore_command

    return restore_command(Path(args.file), Path(args.config) if args.config else None,
                           Path(args.data_dir) if args.data_dir else None, args.force, print)


def cmd_schema(args: argparse.Namespace) -> int:
    if args.what == "profile":
        from gateway.scenes.reference import profile_json_schema

        schema = profile_json_schema()
    else:
        from gateway.model import json_schema

        schema = json_schema()
    sys.stdout.buffer.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from gateway import doctor

    context = doctor.discover(args.config, mosquitto_conf=args.mosquitto_conf)
    checks = doctor.run_checks(context, only=set(args.only) if args.only else None)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(doctor.report(context, checks), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(doctor.render_text(context, checks))
    return doctor.exit_code(checks)


def cmd_service(args: argparse.Namespace) -> int:
    import os

    from gateway import service

    root = Path(args.root).resolve() if args.root else None
    if args.action == "install":
        config = None if args.no_config else Path(args.config) if args.config else service.DEFAULT_CONFIG
        groups = tuple(g for g in args.group if g) if args.group is not None else service.default_groups()
        options = service.ServiceOptions(name=args.name, user=args.user, config=config, groups=groups,
                                         python=Path(args.python) if args.python else Path(sys.executable),
                                         watchdog_s=args.watchdog_s, root=root, start=not args.no_start)
        found = service.problems(options)
        if args.print:
            for problem in found:
                print(f"warning: {problem}", file=sys.stderr)
            sys.stdout.write(service.unit_text(options))
            return 0
        steps = service.install_steps(options)
    else:
        options = service.ServiceOptions(name=args.name, root=root)
        found = []
        steps = service.uninstall_steps(options)
        if not steps:
            print(f"{options.unit_file} is not installed", file=sys.stderr)
            return 0
    if args.dry_run:
        for problem in found:
            print(f"warning: {problem}", file=sys.stderr)
        for step in steps:
            print(f"would {step.describe()}")
        if args.action == "install":
            print(f"--- {options.under_root(Path('/etc/systemd/system') / options.unit_file)}")
            sys.stdout.write(service.unit_text(options))
        return 0
    if found:
        raise service.ServiceError(found[0])
    if root is None and os.geteuid() != 0:
        raise service.ServiceError(f"hearth service {args.action} changes the system: run it as root "
                                   f"(sudo {Path(sys.argv[0]).name} service {args.action}), or see it first "
                                   "with --dry-run")
    service.apply(steps, lambda line: print(line, file=sys.stderr))
    if args.action == "install":
        print(f"installed {options.unit_file}: systemctl status {options.name}; journalctl -u {options.name} -f",
              file=sys.stderr)
    else:
        print(f"removed {options.unit_file}; the user, {service.DEFAULT_CONFIG} and /var/lib/hearth (the house) stay",
              file=sys.stderr)
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"hearth {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearth", description="Hearth, a local-first smart-home gateway.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway")
    p.add_argument("--config", "-c", help="config file (TOML); without it, the embedded defaults")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the gateway with a simulated house (embedded broker, accelerated time)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per real second (default 60: an hour a minute)")
    p.add_argument("--port", type=int, default=8470, help="web UI / API port on 127.0.0.1 (default 8470)")
    p.add_argument("--data-dir", default="hearth-demo-data",
                   help="where the demo keeps its login token and database (default ./hearth-demo-data)")
    p.add_argument("--seed", type=int, default=1, help="the resident's randomness (same seed, same days)")
    p.add_argument("--start", default="06:30", help="local time of day the simulation starts at (default 06:30)")
    p.add_argument("--bad-morning-day", type=int, default=1,
                   help="which simulated day goes wrong: 0 = the first, 1 = the second (default); -1: none")
    p.add_argument("--mqtt-port", type=int, default=0, help="embedded broker port (default: any free port)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--capture", metavar="FILE",
                   help="write the simulated house's traffic to FILE (JSON Lines, for hearth replay) and exit")
    p.add_argument("--hours", type=float, default=24.0, help="with --capture: simulated hours to write")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="check a config file")
    config_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate FILE; errors name the file, line and key")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    p = sub.add_parser("replay", help="show what the gateway makes of a capture (no network)")
    p.add_argument("capture", help="capture file (JSON Lines)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--config", "-c", help="config file for areas, tags, location and profile parameters")
    p.add_argument("--profile", "-p", action="append",
                   help="dry-run this profile (name or file; repeatable); default: the config's [[profiles]]")
    p.add_argument("--traces", "-v", action="store_true",
                   help="show every scene run (default: the runs that acted, the others counted)")
    p.add_argument("--explain", metavar="SCENE",
                   help="say why this scene (profile.scene, or scene) did or did not run")
    p.add_argument("--at", metavar="TIME",
                   help="stop the replay at TIME (local 'HH:MM', its first time in the capture, or "
                        "'2026-03-10T07:30'); with --explain: explain it as of then")
    p.add_argument("--strict", action="store_true", help="exit 1 when anything in the capture was rejected")
    p.add_argument("--language", choices=available_languages(), default=None,
                   help="--explain: say each run's sentences in this language (as the web UI's traces do)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("profile", help="scene profiles: list, show, check")
    profile_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = profile_sub.add_parser("list", help="the profiles this gateway can use")
    q.add_argument("--config", "-c")
    q.set_defaults(func=cmd_profile_list)
    q = profile_sub.add_parser("show", help="a profile's parameters and scenes")
    q.add_argument("name")
    q.add_argument("--config", "-c", help="show the parameters as this config sets them")
    q.set_defaults(func=cmd_profile_show)
    q = profile_sub.add_parser("check", help="validate a profile; errors name file, line and key")
    q.add_argument("profile", help="a profile's name (shipped, or in the config's profile_dirs) or its file")
    q.add_argument("--house", help="a config (.toml) or capture (.jsonl): report what the profile needs that "
                                   "this house lacks")
    q.add_argument("--config", "-c", help="config whose [[profiles]] parameters to use (and areas, tags)")
    q.set_defaults(func=cmd_profile_check)

    p = sub.add_parser("plugin", help="for appliance makers: start a plugin package, check one against the contract")
    plugin_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = plugin_sub.add_parser("new", help="create a pip-installable plugin package (codec, adapter, capture, "
                                          "tests, README)")
    q.add_argument("name", help="the plugin's name: a Python identifier such as 'acme' (its adapter's name)")
    q.add_argument("--dir", default=".", help="where to create the package's directory (default: here)")
    q.add_argument("--force", action="store_true", help="write into an existing, non-empty directory")
    q.set_defaults(func=cmd_plugin_new)
    q = plugin_sub.add_parser("check", help="check an installed plugin against the adapter contract "
                                            "(a pass/fail table; exit 1 on a failure)")
    q.add_argument("name", nargs="?", help="the plugin's entry-point name, or module:Class (not installed yet; "
                                           "NAME=module:Class names it); default: every non-built-in one")
    q.add_argument("--capture", action="append", metavar="FILE",
                   help="a capture of the device's traffic to replay too (repeatable), after the plugin's own "
                        "(the *.jsonl in the captures folder of its package)")
    q.add_argument("--config", "-c", help="config file with the plugin's [adapters.NAME] section")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_plugin_check)

    p = sub.add_parser("definition", help="declarative device definitions (TOML)")
    definition_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = definition_sub.add_parser("check", help="validate definition files; errors name file, line and key")
    q.add_argument("files", nargs="+", metavar="FILE", help="definition files or folders of them")
    q.set_defaults(func=cmd_definition_check)

    p = sub.add_parser("mqtt", help="the MQTT broker: credentials and an ACL for one reachable beyond loopback")
    mqtt_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = mqtt_sub.add_parser("secure", help="write mosquitto.conf, a password file and an ACL: a user per bridge, "
                                           "each kept to its own topics, anonymous clients refused")
    q.add_argument("--out", "-o", required=True, help="the folder to write them to")
    q.add_argument("--client", action="append", metavar="NAME[=TOPIC,...]",
                   help="a bridge: zigbee2mqtt, tasmota, shelly, homie, homeassistant (their usual topics), or "
                        "NAME=prefix/# (repeatable; the gateway's own user, hearth, is always made)")
    q.add_argument("--listen", default="0.0.0.0", help="the address Mosquitto listens on (default 0.0.0.0)")
    q.add_argument("--port", type=int, default=1883, help="its port (default 1883)")
    q.add_argument("--force", action="store_true", help="write new passwords over existing files")
    q.set_defaults(func=cmd_mqtt_secure)

    p = sub.add_parser("capture", help="record live MQTT traffic into a capture file")
    p.add_argument("--out", "-o", required=True, help="file to append to")
    p.add_argument("--topic", "-t", action="append", help="topic filter (repeatable; default '#')")
    p.add_argument("--config", "-c", help="config file (broker settings)")
    p.add_argument("--host", help="broker host (overrides config)")
    p.add_argument("--port", type=int, help="broker port (overrides config)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("token", help="manage API tokens (for machines and scripts), each with a role")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("name", nargs="?", help="token name (create) or id/name (revoke)")
    p.add_argument("--role", default="owner", choices=["owner", "caregiver", "installer", "resident"],
                   help="what the token may do (create; default owner)")
    p.add_argument("--expires", help="create: when it stops working: 7d, 12h, 90m or a date 2026-12-31 "
                                     "(required for installer)")
    p.add_argument("--config", "-c", help="config file (where the token file lives), as for hearth run")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("user", help="manage the people who log in to the web UI (accounts and roles)")
    p.add_argument("action", choices=["add", "list", "passwd", "set", "remove"])
    p.add_argument("name", nargs="?", help="the user's name")
    p.add_argument("--role", choices=["owner", "caregiver", "installer", "resident"],
                   help="add, set: owner (everything), caregiver (house and alerts), installer (devices, "
                        "scenes; time-limited), resident (the resident's view)")
    p.add_argument("--expires", help="add, set: when the access ends: 7d, 12h or a date (required for "
                                     "installer); set: 'never' to lift it")
    p.add_argument("--password-stdin", action="store_true",
                   help="add, passwd: read the password from standard input instead of asking")
    p.add_argument("--contact", help="add, set: the notification contact ([notify.NAME] of the config) this "
                                     "person is: they set its quiet hours and channels themselves; set: 'none' "
                                     "to unlink")
    p.add_argument("--config", "-c", help="config file (where the data directory is), as for hearth run")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("matter", help="the Matter bridge: the pairing code for Apple Home, Google Home, Alexa, ..., "
                                      "and forgetting paired controllers")
    matter_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = matter_sub.add_parser("pair", help="print the manual pairing code and the QR code's payload")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--config", "-c", help="config file (where the data directory is), as for hearth run")
    q.set_defaults(func=cmd_matter)
    q = matter_sub.add_parser("reset", help="forget every paired controller (fabric); the gateway must be stopped")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    q.add_argument("--config", "-c", help="config file (where the data directory is), as for hearth run")
    q.set_defaults(func=cmd_matter)

    p = sub.add_parser("data", help="personal data: export everything about the house and its people, delete it, "
                                    "read the audit log")
    data_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = data_sub.add_parser("export", help="one zip of JSON files with a manifest: devices, history, alerts and who "
                                           "acknowledged them, users and tokens (never a hash), notification "
                                           "contacts, the audit log; also while the gateway runs")
    q.add_argument("--out", "-o", metavar="FILE", help="the zip to write (default hearth-data-<time>.zip, mode 0600)")
    q.add_argument("--config", "-c", help="config file (where the database is), as for hearth run")
    q.set_defaults(func=cmd_data)
    q = data_sub.add_parser("delete", help="delete the history (default) or everything (--all: a factory reset "
                                           "keeping the config file); the gateway must be stopped")
    scope = q.add_mutually_exclusive_group()
    scope.add_argument("--history-only", action="store_true",
                       help="state history, resolved alerts, scene traces, check-ins, audit entries (the default)")
    scope.add_argument("--all", action="store_true",
                       help="also every device, user, session and token: a factory reset")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    q.add_argument("--config", "-c", help="config file (where the database is), as for hearth run")
    q.set_defaults(func=cmd_data)
    q = data_sub.add_parser("audit", help="print the latest entries of the audit log (who did what, when, from where)")
    q.add_argument("--limit", "-n", type=int, default=50, help="how many (default 50)")
    q.add_argument("--action", dest="action_filter", metavar="ACTION",
                   help="only this action (alert.acknowledge, device.change, data.export, login.failed, ...)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--config", "-c", help="config file (where the database is), as for hearth run")
    q.set_defaults(func=cmd_data)

    p = sub.add_parser("backup", help="back up the house into one archive: the database (copied online, also while "
                                      "the gateway runs), tokens, accounts, config and definitions")
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="the archive to write (default hearth-backup-<UTC time>.tar.gz here; a folder: in it)")
    p.add_argument("--config", "-c", help="config file (where the data is, and itself backed up), as for hearth run")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore a backup (checked whole first) into an empty data directory; the "
                                       "gateway must be stopped")
    p.add_argument("file", metavar="FILE", help="a hearth backup archive (.tar.gz)")
    p.add_argument("--config", "-c", help="where to restore the archive's config file (and the definitions and "
                                          "profiles it names); without it the config is not restored")
    p.add_argument("--data-dir", help="the data directory to restore into (default: the config's, as for hearth run)")
    p.add_argument("--force", action="store_true",
                   help="restore over a non-empty data directory: the present one is moved aside, never deleted")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("schema", help="print a JSON Schema: the capability model (default), or a profile file's "
                                      "(for editors: Taplo / Even Better TOML, VS Code)")
    p.add_argument("what", nargs="?", choices=["capabilities", "profile"], default="capabilities",
                   help="capabilities (default): the capability model; profile: a scene profile (TOML) file")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("doctor", help="check what the gateway depends on (broker, BLE, mDNS, clock, disk, database, "
                                      "exposed ports, versions) and say what to do; exit 0 all ok, 1 warnings, "
                                      "2 failures")
    p.add_argument("--config", "-c", help="config file, as for hearth run (default: the installed service's, else "
                                          "the defaults)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--mosquitto-conf", metavar="FILE", help="the broker's mosquitto.conf (default: "
                                                            "/etc/mosquitto/mosquitto.conf for a local broker)")
    p.add_argument("--only", action="append", metavar="CHECK",
                   choices=["broker", "nodelay", "ble", "mdns", "clock", "disk", "database", "exposure", "versions"],
                   help="run only this check (repeatable; the config is always checked)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("service", help="install Hearth as a systemd service (a dedicated user, hardened, "
                                       "restarted on failure and by its watchdog), or remove it")
    service_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = service_sub.add_parser("install", help="write the unit, make the user, enable and start it (as root)")
    q.add_argument("--print", action="store_true", help="print the unit file only; change nothing")
    q.add_argument("--dry-run", action="store_true", help="say every step and print the unit; change nothing")
    q.add_argument("--user", default="hearth", help="the system user it runs as (made if missing; default hearth)")
    q.add_argument("--config", "-c", help="the config file it runs with (default /etc/hearth/config.toml, made "
                                          "with a comment if missing)")
    q.add_argument("--no-config", action="store_true", help="run with the built-in defaults, no config file")
    q.add_argument("--python", help="the interpreter with Hearth installed (default: this one)")
    q.add_argument("--group", action="append", metavar="GROUP",
                   help="an extra group for the user (repeatable; default: bluetooth, when it exists)")
    q.add_argument("--watchdog-s", type=int, default=30,
                   help="restart the gateway when its event loop was held this long (default 30)")
    q.add_argument("--name", default="hearth", help="the unit's name (default hearth: hearth.service)")
    q.add_argument("--root", help="write below this directory instead of / (image builders); no user is made, "
                                  "systemctl --root enables without starting")
    q.add_argument("--no-start", action="store_true", help="enable it for the next boot, do not start it now")
    q.set_defaults(func=cmd_service)
    q = service_sub.add_parser("uninstall", help="stop, disable and remove the unit (the data and the user stay)")
    q.add_argument("--dry-run", action="store_true", help="say every step; change nothing")
    q.add_argument("--name", default="hearth", help="the unit's name (default hearth)")
    q.add_argument("--root", help="remove below this directory instead of /")
    q.set_defaults(func=cmd_service, print=False)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except HearthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hearth profile show x | head`: the reader went away; that is not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

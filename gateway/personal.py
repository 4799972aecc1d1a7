"""Personal data (ETSI EN 303 645 provisions 5.11 and 6): what Hearth keeps about the house and its people, how
long, how to take all of it away (``hearth data export``) and how to delete it (``hearth data delete``).

The monitoring history of a resident is health-adjacent data. This module owns:

- **retention** of what the scene engine keeps in the store's key-value scopes (resolved alerts, their
  notification deliveries, scene run traces, the resident's check-ins): a hook the store's daily retention
  pass runs (:func:`engine_retention_hook`); the store prunes its own history and audit log;
- **the export**: one zip of JSON files with a manifest, read from the SQLite file in one read transaction
  (a consistent snapshot, also while the gateway writes) and from the accounts files. Never a password hash,
  a token's hash or salt, a session id's hash, an acknowledge link's hash, or a secret from the config;
- **the delete**: the history (and alerts, traces, check-ins, audit entries older than now), or everything
  (a factory reset: also devices, users, sessions, tokens; the config file stays), in one SQLite transaction,
  then VACUUM. Offline only (the store's lock file says whether a gateway has the database open), or through
  the running gateway's API for the history.

What the audit log records, and who may read it, is in :mod:`gateway.api.data`.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import logging
import os
import re
import sqlite3
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gateway import __version__
from gateway.errors import HearthError

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.store import AuditEntry, Retention, Store

__all__ = [
    "ARCHIVE_FORMAT",
    "DataError",
    "append_audit_offline",
    "delete_offline",
    "engine_retention_hook",
    "erase_engine_history",
    "export_archive",
    "redact",
]

log = logging.getLogger("hearth.personal")

ARCHIVE_FORMAT = "hearth-personal-data"
ARCHIVE_VERSION = 1
# Keys whose values never leave in an export, wherever they are (an adapter's stored bridge info holds a
# Zigbee network key; the accounts files hold hashes).
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?|secret|token|bindkey|api_?key|network_?key|psk|credential|hash|"
                         r"salt|csrf|authorization|cookie", re.IGNORECASE)
REDACTED = "(redacted)"
# Key-value scopes that hold nothing of a person but secrets (acknowledge links: hashes of one-time tokens).
_SECRET_SCOPES = frozenset({"ack_links"})
# The scene engine's scopes (gateway.app): its state (alerts, the house mode, occupancy), traces by scene.
ENGINE_SCOPE = "scenes"
TRACE_SCOPE = "scene_traces"


class DataError(HearthError):
    """An export or delete could not be done (the reason says why; nothing was half-deleted)."""


def redact(value: Any) -> Any:
    """``value`` with the value of every secret-looking key replaced (recursively)."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v is not None else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _url_scheme_only(url: Any) -> Any:
    # An Apprise URL carries its secret in the host part (tgram://<bot token>/...), a webhook's in its path or
    # query: of a contact's address the export keeps what kind of service it is, nothing more.
    if isinstance(url, str) and "://" in url:
        return url.split("://", 1)[0] + "://" + REDACTED
    return url


def notify_contacts(notify: dict[str, Any]) -> dict[str, Any]:
    """``[notify]`` as configured, for an export: contacts by name, their kind, language, topics and quiet
    hours; URLs reduced to their scheme, header values and secrets left out."""
    out: dict[str, Any] = {}
    for name, section in notify.items():
        if not isinstance(section, dict):
            out[name] = _url_scheme_only(section)  # plain keys: public_url, ack_link_ttl_h
            continue
        contact: dict[str, Any] = {}
        for key, value in section.items():
            if key in ("url", "urls", "fallback_urls"):
                contact[key] = ([_url_scheme_only(v) for v in value] if isinstance(value, list)
                                else _url_scheme_only(value))
            elif key == "headers" and isinstance(value, dict):
                contact[key] = {header: REDACTED for header in value}
            else:
                contact[key] = value
        out[name] = redact(contact)
    return out


# ------------------------------------------------------------------ retention of the engine's data


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def prune_alert_list(alerts: list[dict[str, Any]], now: float, retention: Retention) -> tuple[list[dict[str, Any]],
                                                                                             int, int]:
    """Resolved alerts past ``alert_days`` dropped; of the resolved ones left, deliveries past
    ``notification_days`` dropped (an open alert's are its escalation's memory). (kept, alerts, deliveries)."""
    alert_cut = now - retention.alert_days * 86400.0
    note_cut = now - retention.notification_days * 86400.0
    kept: list[dict[str, Any]] = []
    gone_alerts = gone_notes = 0
    for alert in alerts:
        if alert.get("state") == "resolved":
            when = alert.get("resolved_at") or alert.get("raised_at") or 0.0
            if when < alert_cut:
                gone_alerts += 1
                continue
            notes = alert.get("notifications") or []
            fresh = [n for n in notes if (_epoch(n.get("t")) or now) >= note_cut]
            if len(fresh) != len(notes):
                gone_notes += len(notes) - len(fresh)
                alert["notifications"] = fresh
        kept.append(alert)
    return kept, gone_alerts, gone_notes


def _fresh_traces(traces: list[dict[str, Any]], cutoff: float) -> list[dict[str, Any]]:
    return [trace for trace in traces if (_epoch(trace.get("t")) or cutoff) >= cutoff]


def engine_retention_hook(store: Store, engine: Any, retention: Retention) -> Callable[[float], dict[str, int]]:
    """The store's retention pass for what the scene engine keeps: it holds its alerts and traces in memory and
    writes them back whole, so they are pruned there (and the store writes the result with its next batch)."""
    from gateway.scenes.engine import TRACES_STORED

    def prune(now: float) -> dict[str, int]:
        alerts = sorted(engine.alerts.values(), key=lambda a: a["raised_at"])
        kept, gone_alerts, gone_notes = prune_alert_list(alerts, now, retention)
        check_ins = 0
        resident = getattr(engine, "_resident", None) or engine.storage.get("resident")
        if isinstance(resident, dict):
            cut = now - retention.alert_days * 86400.0
            for key in ("check_ins", "calls"):
                entries = resident.get(key) or []
                fresh = [e for e in entries if (_epoch(e.get("t")) or now) >= cut]
                check_ins += len(entries) - len(fresh)
                resident[key] = fresh
            if check_ins:
                engine.storage.set("resident", resident)
        if gone_alerts or gone_notes:
            engine.alerts = {a["id"]: a for a in kept}
            engine._save()  # the engine's own persistence (deferred to the next batch)
        trace_cut = now - retention.trace_days * 86400.0
        traces = 0
        for sid, rt in engine.scenes.items():
            fresh = _fresh_traces(list(rt.traces), trace_cut)
            if len(fresh) != len(rt.traces):
                traces += len(rt.traces) - len(fresh)
                rt.traces.clear()
                rt.traces.extend(fresh)
                engine.trace_storage.set(sid, fresh[-TRACES_STORED:])
        stored = store.kv(TRACE_SCOPE)
        for sid, value in list(stored.items()):  # scenes no longer configured: not in the engine's memory
            if sid in engine.scenes or not isinstance(value, list):
                continue
            fresh = _fresh_traces(value, trace_cut)
            if len(fresh) != len(value):
                traces += len(value) - len(fresh)
                stored.set(sid, fresh) if fresh else stored.delete(sid)
        counts = {"alerts": gone_alerts, "notifications": gone_notes, "traces": traces, "check_ins": check_ins}
        if any(counts.values()):
            log.info("retention: deleted %s", ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        return counts

    return prune


def erase_engine_history(engine: Any, store: Store | None = None) -> dict[str, int]:
    """For a delete through the running gateway: the engine forgets resolved alerts, every trace, the
    resident's check-ins and the occupancy log. Open and acknowledged alerts stay (an escalation in progress
    is a person in need, not history). What it writes goes into the store's next transaction."""
    resolved = [aid for aid, a in engine.alerts.items() if a.get("state") == "resolved"]
    for alert_id in resolved:
        del engine.alerts[alert_id]
    traces = 0
    for sid, rt in engine.scenes.items():
        traces += len(rt.traces)
        rt.traces.clear()
        engine.trace_storage.delete(sid)
    if store is not None:
        for sid, value in list(store.kv(TRACE_SCOPE).items()):
            traces += len(value) if isinstance(value, list) and sid not in engine.scenes else 0
            store.kv(TRACE_SCOPE).delete(sid)
    check_ins = 0
    resident = getattr(engine, "_resident", None)
    if isinstance(resident, dict):
        check_ins = sum(len(resident.get(k) or []) for k in ("check_ins", "calls"))
        resident["check_ins"], resident["calls"] = [], []
    if hasattr(engine.storage, "delete"):
        engine.storage.delete("resident")
    else:  # a plain storage (tests, replay)
        engine.storage.set("resident", {})
    occupancy_log = getattr(engine, "occupancy_log", None)
    if occupancy_log is not None:
        occupancy_log.clear()
    engine._save()
    return {"alerts": len(resolved), "traces": traces, "check_ins": check_ins,
            "alerts_kept_open": len(engine.alerts)}


def erase_stored_engine_history(store: Store) -> dict[str, int]:
    """The same for a gateway that is not running: straight in the engine's stored state."""
    state_view = store.kv(ENGINE_SCOPE)
    state = state_view.get("state") or {}
    alerts = state.get("alerts") or []
    open_alerts = [a for a in alerts if a.get("state") != "resolved"]
    if len(open_alerts) != len(alerts):
        state_view.set("state", {**state, "alerts": open_alerts})
    resident = state_view.get("resident") or {}
    check_ins = sum(len(resident.get(k) or []) for k in ("check_ins", "calls")) if isinstance(resident, dict) else 0
    state_view.delete("resident")
    trace_view = store.kv(TRACE_SCOPE)
    traces = 0
    for sid, value in list(trace_view.items()):
        traces += len(value) if isinstance(value, list) else 0
        trace_view.delete(sid)
    return {"alerts": len(alerts) - len(open_alerts), "traces": traces, "check_ins": check_ins,
            "alerts_kept_open": len(open_alerts)}


# ------------------------------------------------------------------ export


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _read_json_file(path: Path, key: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from err
    items = data.get(key) if isinstance(data, dict) else None
    return items if isinstance(items, dict) else {}


def accounts(token_file: Path) -> dict[str, list[dict[str, Any]]]:
    """Users, tokens and sessions as an export shows them: names, roles, times; never a hash or a secret."""
    users = [{"name": name, "role": item.get("role"), "created": item.get("created"), "expires": item.get("expires"),
              "language": item.get("language")}
             for name, item in sorted(_read_json_file(token_file.with_name("users.json"), "users").items())]
    from gateway.api.auth import TokenError, TokenStore

    try:  # TokenInfo: what is public about a token (never the token, its salt or its hash)
        tokens = [info.as_dict() for info in TokenStore(token_file).list()]
    except TokenError as err:
        raise DataError(str(err)) from err
    sessions = [{"kind": item.get("kind"), "subject": item.get("subject"), "created": item.get("created"),
                 "expires": item.get("expires")}
                for item in _read_json_file(token_file.with_name("sessions.json"), "sessions").values()
                if isinstance(item, dict)]
    return {"users": users, "tokens": tokens, "sessions": sessions}


def _connect_read_only(db_path: Path) -> sqlite3.Connection | None:
    if not db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        # One read transaction for everything: in WAL mode a consistent snapshot, while the gateway goes on
        # committing (readers never block its writer, nor it them).
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as err:
        raise DataError(f"cannot read {db_path}: {err}") from err
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _history_rows(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    from gateway.store import HISTORY_WIDTH, _load_block

    for device_id, text in conn.execute("SELECT device_id, rows FROM history_block ORDER BY t_last, rowid"):
        try:
            changes = _load_block(text)
        except (ValueError, TypeError):
            continue
        for i in range(0, len(changes), HISTORY_WIDTH):
            t, component, capability, attribute, value = changes[i:i + HISTORY_WIDTH]
            yield {"t": t, "device_id": device_id, "component": component, "capability": capability,
                   "attribute": attribute, "value": value}


def _dump(value: Any) -> bytes:
    # NaN (a broken sensor's reading, kept as the hub had it) is written as null: an export is for other tools.
    return json.dumps(_finite(value), ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def export_archive(out: IO[bytes], *, db_path: Path, token_file: Path, config: Config | None = None,
                   now: float | None = None, exported_by: str | None = None) -> dict[str, int]:
    """Write the zip of everything Hearth keeps about the house and its people to ``out``. Runs in a worker
    thread (reads files, the database and compresses). Returns the record count of each file."""
    from gateway.store import _loads

    now = time.time() if now is None else now
    counts: dict[str, int] = {}
    what: dict[str, str] = {}
    conn = _connect_read_only(db_path)
    try:
        tables = _tables(conn) if conn is not None else set()
        kv: dict[str, dict[str, Any]] = {}
        if "kv" in tables:
            assert conn is not None
            for scope, key, value in conn.execute("SELECT scope, key, value FROM kv ORDER BY scope, key"):
                try:
                    kv.setdefault(scope, {})[key] = _loads(value)
                except ValueError:
                    kv.setdefault(scope, {})[key] = value
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            def put(name: str, data: Any, records: int, description: str) -> None:
                archive.writestr(name, _dump(data))
                counts[name] = records
                what[name] = description

            devices: list[dict[str, Any]] = []
            if "devices" in tables:
                assert conn is not None
                state: dict[str, list[dict[str, Any]]] = {}
                for device_id, comp, cap, attr, value, t in conn.execute(
                        "SELECT device_id, component, capability, attribute, value, t FROM state ORDER BY 1, 2, 3, 4"):
                    state.setdefault(device_id, []).append({"component": comp, "capability": cap, "attribute": attr,
                                                            "value": _loads(value), "t": t})
                for device_id, description, available, updated_at in conn.execute(
                        "SELECT id, description, available, updated_at FROM devices ORDER BY id"):
                    described = redact(_loads(description))
                    devices.append({"id": device_id, "name": described.get("name"), "area": described.get("area"),
                                    "available": None if available is None else bool(available),
                                    "updated_at": updated_at, "description": described,
                                    "state": state.get(device_id, [])})
            put("devices.json", {"devices": devices, "owner_edits": kv.get("device_meta", {}),
                                 "area_names": kv.get("area_names", {}),
                                 "config_areas": dict(config.areas) if config else {},
                                 "config_tags": dict(config.tags) if config else {}},
                len(devices), "every device: its name, area, description and last state; the names and areas "
                              "set in the web UI (owner_edits, area_names) and in the config")

            history_count = 0
            with archive.open("history.json", "w") as handle:
                handle.write(b"[")
                if "history_block" in tables:
                    assert conn is not None
                    for row in _history_rows(conn):
                        handle.write((b",\n" if history_count else b"\n") + json.dumps(
                            _finite(row), ensure_ascii=False, allow_nan=False).encode("utf-8"))
                        history_count += 1
                handle.write(b"\n]\n")
            counts["history.json"] = history_count
            what["history.json"] = "every stored state change, oldest first (t in epoch seconds, UTC)"

            engine_state = kv.get(ENGINE_SCOPE, {}).get("state") or {}
            alerts = engine_state.get("alerts") or []
            put("alerts.json", {"alerts": alerts, "resident": kv.get(ENGINE_SCOPE, {}).get("resident") or {}},
                len(alerts), "alerts: raised, acknowledged and resolved (by whom, when), each notification and "
                             "its deliveries; the resident's check-ins and calls for help")
            traces = kv.get(TRACE_SCOPE, {})
            put("scene_traces.json", traces, sum(len(v) for v in traces.values() if isinstance(v, list)),
                "the last runs of each scene: what set it off, what it saw, what it did")
            put("house.json", {k: v for k, v in engine_state.items() if k != "alerts"}, 1,
                "the scene engine's memory: house mode, occupancy, today's activity, saved states, timers")
            people = accounts(token_file)
            put("users.json", people["users"], len(people["users"]),
                "the people who log in: name, role, created, expiry, language (never a password hash)")
            put("tokens.json", people["tokens"], len(people["tokens"]),
                "API tokens: id, name, role, created, expiry, last use (never the token or its hash)")
            put("sessions.json", people["sessions"], len(people["sessions"]),
                "browser sessions: whose, since and until when (never the session id or its hash)")
            contacts = notify_contacts(config.notify) if config else {}
            put("notify_contacts.json", contacts, sum(isinstance(v, dict) for v in contacts.values()),
                "notification contacts as configured ([notify.<name>]); URLs reduced to their scheme, "
                "header values and secrets left out")
            audit: list[dict[str, Any]] = []
            if "audit" in tables:
                from gateway.store import read_audit_rows

                assert conn is not None
                audit = read_audit_rows(conn, 10**9)
            put("audit.json", audit, len(audit), "the audit log, newest first: who did what, when, from where")
            other = {scope: redact(values) for scope, values in kv.items()
                     if scope not in {ENGINE_SCOPE, TRACE_SCOPE, "device_meta", "area_names"} | _SECRET_SCOPES}
            put("storage.json", other, sum(len(v) for v in other.values()),
                "what adapters and the notifier keep (bridge device lists, notifications held for quiet hours); "
                "secret-looking keys left out")
            manifest = {
                "format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION, "created": _iso(now),
                "hearth_version": __version__, "gateway": config.gateway.name if config else None,
                "database": str(db_path), "database_found": conn is not None, "exported_by": exported_by,
                "files": {name: {"records": counts[name], "what": what[name]} for name in counts},
                "left_out": ["password hashes, token hashes and salts, session ids and their hashes",
                             "acknowledge-link tokens (kept hashed)", "secrets of the config: the MQTT password, "
                             "notification URLs and headers (their scheme is shown)", "the config file itself"],
            }
            archive.writestr("manifest.json", _dump(manifest))
    finally:
        if conn is not None:
            conn.close()
    return counts


def write_export(path: Path, **kwargs: Any) -> dict[str, int]:
    """:func:`export_archive` into ``path``, created 0600 (it is the house's personal data) and replaced whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            counts = export_archive(handle, **kwargs)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DataError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return counts


def export_bytes(**kwargs: Any) -> tuple[bytes, dict[str, int]]:
    buffer = io.BytesIO()
    counts = export_archive(buffer, **kwargs)
    return buffer.getvalue(), counts


# ------------------------------------------------------------------ offline audit and delete


def cli_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


def append_audit_offline(db_path: Path, entry: AuditEntry) -> bool:
    """Append to the audit log of a database from outside the gateway (the CLI), running or not: one small
    transaction of its own (WAL: beside a running gateway's). False when there is no audit log to write to
    (no database yet, or one a Hearth without the audit log wrote last)."""
    from gateway.store import _dumps_value

    if not db_path.exists():
        return False
    try:
        conn = sqlite3.connect(db_path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            if "audit" not in _tables(conn):
                return False
            conn.execute("INSERT INTO audit (t, actor_kind, actor, role, action, target, detail, address) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (entry.t, entry.actor_kind, entry.actor, entry.role, entry.action, entry.target,
                          None if entry.detail is None else _dumps_value(entry.detail), entry.address))
        finally:
            conn.close()
    except sqlite3.Error as err:
        log.error("could not write the audit log of %s: %s", db_path, err)
        return False
    return True


def _remove_accounts(token_file: Path) -> dict[str, int]:
    people = accounts(token_file)
    counts = {"users": len(people["users"]), "tokens": len(people["tokens"]), "sessions": len(people["sessions"])}
    for path in (token_file, token_file.with_name("users.json"), token_file.with_name("sessions.json")):
        for each in (path, path.with_name(path.name + ".lock")):
            try:
                each.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise DataError(f"cannot remove {each}: {err.strerror}") from err
    return counts


async def delete_offline(config: Config, *, everything: bool, clock: Any = None) -> dict[str, int]:
    """``hearth data delete``: with the gateway stopped (StoreInUseError otherwise, before anything is touched).
    The database part is one transaction and a VACUUM; with ``everything`` the accounts files go after it."""
    from gateway.clock import SystemClock
    from gateway.store import AuditEntry, Store

    clock = clock or SystemClock()
    async with Store(config.store_path, clock, retention=config.store.retention(), exclusive=True) as store:
        engine_counts: dict[str, int] = {}

        def prepare() -> None:
            if not everything:
                engine_counts.update(erase_stored_engine_history(store))

        counts = await store.erase(everything=everything, prepare=prepare)
        counts.update(engine_counts)
        if everything:
            counts.update(_remove_accounts(config.token_file))
        await store.audit(AuditEntry(clock.time(), "data.delete", "cli", cli_actor(), None,
                                     "everything" if everything else "history",
                                     {k: v for k, v in counts.items() if v}, "local"))
    return counts

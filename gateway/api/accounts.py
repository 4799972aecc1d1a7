"""People and what they may do: accounts with passwords, roles, browser sessions, and the route policy.

- **Accounts** live in ``users.json`` beside the token file (``<data dir>/users.json``), 0600, replaced
  atomically, re-read when it changes on disk: the ``hearth user`` CLI and the running gateway share it,
  exactly like ``tokens.json``. Not the SQLite store: the store commits in batches every few seconds (a
  password change must not wait for that or be lost in a power cut), ``hearth demo`` deletes its database
  on every run, and the CLI must be able to add the first owner while the gateway runs.
- **Passwords** are hashed with argon2id (argon2-cffi), OWASP's minimum parameters (19 MiB, 2 passes,
  1 lane): ~40 ms per hash on the development machine, ~150-250 ms on a Raspberry Pi 4, 19 MiB each.
  Logins are hashed in a worker thread, at most ``MAX_CONCURRENT_HASHES`` at once, so a flood of login
  attempts costs at most that much memory. There is no default password, ever.
- **Sessions** (browser logins) live in ``sessions.json`` beside them: only a SHA-256 of the session id
  and of its CSRF token is stored. A session ends when it expires, on logout, when its user's password or
  role changes or the user is removed (each user has a ``generation``, bumped by those changes; a session
  remembers the generation it was made under), or, for a session opened with an API token, when the
  token is revoked.
- **Roles** and the **route policy**: :data:`ROUTE_ROLES`, one table of which role may call which route;
  a route missing from it is the owner's alone (tests/gateway/test_route_roles.py fails until someone
  decides).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.api.private_files import file_lock, write_private_file
from gateway.errors import HearthError

__all__ = [
    "OWNER",
    "PUBLIC",
    "ROLES",
    "ROUTE_ROLES",
    "AccountError",
    "Principal",
    "Session",
    "SessionStore",
    "User",
    "UserStore",
    "allowed_roles",
    "check_role_and_expiry",
]

log = logging.getLogger("hearth.api.accounts")

OWNER, CAREGIVER, INSTALLER, RESIDENT = "owner", "caregiver", "installer", "resident"
ROLES = (OWNER, CAREGIVER, INSTALLER, RESIDENT)
# Roles whose access must end: the owner sets when (installers come for a job, not for good).
ROLES_NEEDING_EXPIRY = frozenset({INSTALLER})

FILE_VERSION = 1
USERNAME_MAX_CHARS = 64
_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
# NIST SP 800-63B: at least 8 characters, and long passphrases allowed; the upper bound keeps one
# login from making the KDF chew megabytes.
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024

# argon2id, RFC 9106 / OWASP minimum: m = 19 MiB, t = 2, p = 1. Measured: 39 ms a hash on the
# development machine (x86-64), a few times that on a Pi 4 -- slow for a guesser, quick for a person.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
# Two logins hash at once at most: 38 MiB of a Pi's RAM, however many arrive.
MAX_CONCURRENT_HASHES = 2

# A browser session: 12 hours, or 30 days with "keep me logged in".
SESSION_S = 12 * 3600.0
REMEMBERED_SESSION_S = 30 * 24 * 3600.0
# Sessions kept per user; the oldest are dropped first (a bound on the file, not a rule for people).
MAX_SESSIONS_PER_USER = 20


class AccountError(HearthError):
    """The accounts file cannot be read or written, or an account operation does not make sense."""


def check_role_and_expiry(role: str, expires: float | None, now: float,
                          error: type[HearthError] = AccountError) -> None:
    if role not in ROLES:
        raise error(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if role in ROLES_NEEDING_EXPIRY and expires is None:
        raise error(f"the {role} role's access is time-limited: give it an expiry (e.g. --expires 7d)")
    if expires is not None and expires <= now:
        raise error("the expiry is in the past")


# -------------------------------------------------------------------- route policy

PUBLIC = "public"
_ALL = frozenset(ROLES)
_READERS = frozenset({OWNER, CAREGIVER, INSTALLER})
_CONFIGURERS = frozenset({OWNER, INSTALLER})
_CARERS = frozenset({OWNER, CAREGIVER})
_OWNER = frozenset({OWNER})
_RESIDENT_VIEW = frozenset({OWNER, CAREGIVER, RESIDENT})

#: Who may call which /api route: (method, canonical path) -> roles, or PUBLIC (the route checks its
#: own credential). A caregiver sees the house and handles alerts but sends no device commands: commands
#: reach locks, valves and heating, and the issue gives caregivers state and alerts only. The installer
#: configures (devices, scenes, commands to test them) but handles no alerts and sets no house mode.
ROUTE_ROLES: dict[tuple[str, str], frozenset[str] | str] = {
    ("POST", "/api/login"): PUBLIC,  # checks the password or token in the body
    ("GET", "/api/ws"): PUBLIC,  # checks the session cookie or the first message's token, then the role
    ("GET", "/api/setup"): PUBLIC,  # whether an owner exists: the login page's "create the owner" offer
    ("POST", "/api/setup/owner"): PUBLIC,  # only while no owner exists, only from loopback
    ("POST", "/api/logout"): _ALL,
    ("GET", "/api/me"): _ALL,
    ("POST", "/api/me/password"): _ALL,
    ("PATCH", "/api/me"): _ALL,  # the person's own settings (their language)
    # the person's own notification settings (quiet hours, channels) as the contact they are, and a test
    ("GET", "/api/me/notifications"): _CARERS,
    ("PUT", "/api/me/notifications"): _CARERS,
    ("POST", "/api/me/notifications/test"): _CARERS,
    ("GET", "/api/devices"): _READERS,
    ("GET", "/api/devices/{id}"): _READERS,
    ("GET", "/api/devices/{id}/meta"): _READERS,
    ("PATCH", "/api/devices/{id}"): _CONFIGURERS,
    ("POST", "/api/devices/{id}/commands"): _CONFIGURERS,
    ("GET", "/api/capabilities"): _READERS,
    ("GET", "/api/things/{id}"): _READERS,  # a device's W3C WoT Thing Description
    ("GET", "/api/openapi.json"): _READERS,  # the API's own description (the resident's view has no use for it)
    ("GET", "/api/history"): _READERS,
    ("GET", "/api/energy"): _READERS,
    ("GET", "/api/discovered"): _CONFIGURERS,
    # the pairing code adds the house to a Matter controller, which then commands every bridged device
    ("GET", "/api/matter"): _CONFIGURERS,
    ("GET", "/api/scenes"): _READERS,
    ("GET", "/api/scenes/{id}"): _READERS,
    ("GET", "/api/scenes/{id}/traces"): _READERS,
    ("GET", "/api/scenes/{id}/runs"): _READERS,
    ("GET", "/api/areas"): _READERS,
    ("PUT", "/api/areas/{area}"): _CONFIGURERS,
    ("PATCH", "/api/scenes/{id}"): _CONFIGURERS,
    ("POST", "/api/scenes/{id}/run"): _CONFIGURERS,
    ("GET", "/api/alerts"): _CARERS,
    ("POST", "/api/alerts/{id}/ack"): _CARERS,
    ("POST", "/api/alerts/{id}/resolve"): _CARERS,
    ("GET", "/api/house"): _READERS,
    ("GET", "/api/mode"): _READERS,
    ("PUT", "/api/mode"): _OWNER,
    ("GET", "/api/tokens"): _OWNER,
    ("POST", "/api/tokens"): _OWNER,
    ("DELETE", "/api/tokens/{id}"): _OWNER,
    ("GET", "/api/users"): _OWNER,
    ("POST", "/api/users"): _OWNER,
    ("PATCH", "/api/users/{name}"): _OWNER,
    ("DELETE", "/api/users/{name}"): _OWNER,
    # personal data (ETSI EN 303 645 5.11): everything about everyone in the house, and the audit log
    ("GET", "/api/data/export"): _OWNER,
    ("POST", "/api/data/delete"): _OWNER,
    ("GET", "/api/audit"): _OWNER,
}
#: Whole subtrees decided at once: the resident's view, and the acknowledge links in notifications (a
#: one-time token in the URL, checked by the route).
PREFIX_ROLES: tuple[tuple[str, frozenset[str] | str], ...] = (
    ("/api/resident", _RESIDENT_VIEW),
    ("/api/ack/", PUBLIC),
)
#: What the WebSocket lets each role do once connected (see gateway.api.ws).
WS_ROLES = _READERS
WS_COMMAND_ROLES = _CONFIGURERS


def allowed_roles(method: str, path: str) -> frozenset[str] | str:
    """The roles that may call ``method path`` (a route's canonical path), or PUBLIC. Undecided: owner."""
    method = "GET" if method == "HEAD" else method
    decided = ROUTE_ROLES.get((method, path))
    if decided is not None:
        return decided
    for prefix, roles in PREFIX_ROLES:
        if path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/"):
            return roles
    return _OWNER


# -------------------------------------------------------------------- principals


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a person logged in (``kind="user"``) or an API token (``kind="token"``).

    ``name`` is what alerts record as who acknowledged them. ``session`` is the browser session's hashed
    id when the request came with the session cookie (then CSRF rules apply).
    """

    kind: str
    id: str
    name: str
    role: str
    expires: float | None = None
    session: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "role": self.role, "expires": self.expires,
                "session": self.session is not None}


# -------------------------------------------------------------------- JSON files


class _JsonFile(abc.ABC):
    """A small JSON file of records, shared between processes: re-read when it changes on disk."""

    key = "records"

    def __init__(self, path: Path, now: Callable[[], float]) -> None:
        self.path = Path(path)
        self._now = now
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, Any]] = {}
        self._signature: tuple[int, int, int] | None = None
        self._load_error: str | None = None

    def _reload(self, *, strict: bool) -> dict[str, dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._items, self._signature, self._load_error = {}, None, None
            return self._items
        except OSError as err:
            return self._fail(f"cannot read {self.path}: {err.strerror}", strict)
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._signature:
            if self._load_error:
                return self._fail(self._load_error, strict)
            return self._items
        self._signature = signature
        try:
            data = json.loads(self.path.read_bytes())
            if not isinstance(data, dict) or not isinstance(data.get(self.key), dict):
                raise ValueError(f"expected an object with a {self.key!r} object")
            items = data[self.key]
            for key, item in items.items():
                self._check(key, item)
        except (ValueError, TypeError, KeyError, RecursionError, OSError) as err:
            return self._fail(f"{self.path}: {err}", strict)
        if st.st_mode & 0o077:
            log.warning("%s is readable by other users; run: chmod 600 %s", self.path, self.path)
        self._items, self._load_error = items, None
        return self._items

    @abc.abstractmethod
    def _check(self, key: str, item: Any) -> None:
        """Raise ValueError/TypeError/KeyError when ``item`` (stored under ``key``) is not a valid entry."""

    def _fail(self, message: str, strict: bool) -> dict[str, dict[str, Any]]:
        if message != self._load_error:
            log.error("%s; nobody can log in with it until it is fixed", message)
        self._items, self._load_error = {}, message
        if strict:
            raise AccountError(message)
        return self._items

    def _write(self, items: dict[str, dict[str, Any]]) -> None:
        text = json.dumps({"version": FILE_VERSION, self.key: items}, indent=2, sort_keys=True) + "\n"
        write_private_file(self.path, text, AccountError)
        self._items = items
        st = self.path.stat()
        self._signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._load_error = None


# -------------------------------------------------------------------- users


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    created: float
    expires: float | None = None
    generation: int = 0
    # A BCP 47 tag of an available catalogue (gateway.i18n), or None: the browser's preference decides.
    language: str | None = None
    # The notification contact this person is (a ``[notify.<name>]`` of the config), linked by the owner:
    # their own notification settings (``notify``: quiet hours, channels) apply to it.
    contact: str | None = None
    notify: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created": self.created, "expires": self.expires,
                "language": self.language, "contact": self.contact}

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def _hasher() -> Any:
    from argon2 import PasswordHasher  # lazily: `import gateway` stays light (STYLE 10)

    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                          parallelism=ARGON2_PARALLELISM)


def check_username(name: str) -> str:
    name = name.strip()
    if not name or len(name) > USERNAME_MAX_CHARS or not _USERNAME_RE.fullmatch(name):
        raise AccountError(f"invalid user name {name[:80]!r}: 1-{USERNAME_MAX_CHARS} letters, digits or . _ @ + -, "
                           "starting with a letter or digit")
    return name


def check_password(password: str, username: str) -> None:
    if len(password) < PASSWORD_MIN_CHARS:
        raise AccountError(f"the password is too short (at least {PASSWORD_MIN_CHARS} characters)")
    if len(password) > PASSWORD_MAX_CHARS:
        raise AccountError(f"the password is too long (at most {PASSWORD_MAX_CHARS} characters)")
    if password.strip().casefold() == username.casefold():
        raise AccountError("the password must not be the user name")


class UserStore(_JsonFile):
    """``users.json``: one record per person, with their role and an argon2id hash of their password.

    Thread-safe; hashing runs in the caller's thread (the API calls it through ``asyncio.to_thread``).
    """

    key = "users"

    def __init__(self, path: Path, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(path, now)
        self._hash_slots = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)
        self._dummy_hash: str | None = None

    def _check(self, key: str, item: Any) -> None:
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("hash"), str):
            raise ValueError(f"users[{key!r}]: malformed entry")

    @staticmethod
    def _user(name: str, item: dict[str, Any]) -> User:
        language = item.get("language")
        contact = item.get("contact")
        notify = item.get("notify")
        return User(name, item["role"], float(item.get("created", 0)),
                    None if item.get("expires") is None else float(item["expires"]),
                    int(item.get("generation", 0)), language if isinstance(language, str) else None,
                    contact if isinstance(contact, str) else None, notify if isinstance(notify, dict) else None)

    def _hash(self, password: str) -> str:
        with self._hash_slots:
            return str(_hasher().hash(password))

    # ---------------------------------------------------------------- public

    def add(self, name: str, role: str, password: str, *, expires: float | None = None,
            only_if_no_owner: bool = False) -> User:
        name = check_username(name)
        check_role_and_expiry(role, expires, self._now())
        check_password(password, name)
        digest = self._hash(password)
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            if only_if_no_owner and any(i["role"] == OWNER for i in items.values()):
                raise AccountError("an owner account exists already")
            if any(n.casefold() == name.casefold() for n in items):
                raise AccountError(f"a user named {name!r} exists already")
            items[name] = {"role": role, "hash": digest, "created": round(self._now(), 3), "expires": expires,
                           "generation": 0}
            self._write(items)
        log.info("added user %s (%s)", name, role)
        return self._user(name, items[name])

    def get(self, name: str) -> User | None:
        with self._lock:
            try:
                item = self._reload(strict=False).get(name)
            except Exception:  # never break the request path
                log.exception("cannot read %s", self.path)
                return None
            return None if item is None else self._user(name, item)

    def list(self) -> list[User]:
        with self._lock:
            return sorted((self._user(n, i) for n, i in self._reload(strict=True).items()),
                          key=lambda u: (u.created, u.name))

    def has_owner(self) -> bool:
        with self._lock:
            return any(i["role"] == OWNER for i in self._reload(strict=True).values())

    def verify_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs and their access has not expired; else None. Never raises.

        An unknown name costs a hash too, so the time taken does not say which names exist.
        """
        from argon2.exceptions import Argon2Error, InvalidHashError

        if not isinstance(password, str) or len(password) > PASSWORD_MAX_CHARS:
            return None
        with self._lock:
            try:
                items = self._reload(strict=False)
            except Exception:
                log.exception("cannot read %s", self.path)
                items = {}
            item = items.get(name)
        if item is None:
            if self._dummy_hash is None:
                self._dummy_hash = self._hash(secrets.token_hex(16))
            stored = self._dummy_hash
        else:
            stored = item["hash"]
        with self._hash_slots:
            try:
                ok = bool(_hasher().verify(stored, password))
            except (Argon2Error, InvalidHashError):
                ok = False
        if not ok or item is None:
            return None
        user = self._user(name, item)
        return None if user.expired(self._now()) else user

    def set_password(self, name: str, password: str) -> User:
        """Change a password; every session of the user ends (their generation moves on)."""
        check_password(password, name)
        digest = self._hash(password)
        return self._update(name, hash=digest)

    def update(self, name: str, *, role: str | None = None, expires: float | str | None = "keep") -> User:
        """Change a role or expiry (``expires=None``: never). Ends the user's sessions."""
        with self._lock:
            current = self.get(name)
        if current is None:
            raise AccountError(f"no user {name!r}")
        new_role = role or current.role
        new_expires = current.expires if expires == "keep" else expires
        assert not isinstance(new_expires, str)
        check_role_and_expiry(new_role, new_expires, self._now())
        if new_role != OWNER and current.role == OWNER and self._owners() <= 1:
            raise AccountError("this is the only owner: make another owner first")
        return self._update(name, role=new_role, expires=new_expires)

    def set_language(self, name: str, language: str | None) -> User:
        """Set (or, with None, forget) a user's language. Their sessions go on: unlike a password or a
        role, a language says nothing about who may do what."""
        from gateway.i18n import available_languages

        if language is not None and language not in available_languages():
            raise AccountError(f"unknown language {language!r} (languages: {', '.join(available_languages())})")
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            item = items.get(name)
            if item is None:
                raise AccountError(f"no user {name!r}")
            items[name] = {**item, "language": language}
            self._write(items)
        log.info("user %s chose the language %s", name, language or "of their browser")
        return self._user(name, items[name])

    def set_contact(self, name: str, contact: str | None) -> User:
        """Link a person to the notification contact they are (None: unlink). One person per contact; their
        own notification settings are for the contact they were linked to, so a new link starts without."""
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            item = items.get(name)
            if item is None:
                raise AccountError(f"no user {name!r}")
            other = next((n for n, i in items.items() if n != name and contact is not None
                          and i.get("contact") == contact), None)
            if other is not None:
                raise AccountError(f"the contact {contact!r} is {other}'s already")
            changed = {"contact": contact}
            if item.get("contact") != contact:
                changed["notify"] = None
            items[name] = {**item, **changed}
            self._write(items)
        log.info("user %s is the contact %s", name, contact)
        return self._user(name, items[name])

    def set_notify(self, name: str, notify: dict[str, Any] | None) -> User:
        """A person's own notification settings (see gateway.api.me); None: the config's again."""
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            item = items.get(name)
            if item is None:
                raise AccountError(f"no user {name!r}")
            items[name] = {**item, "notify": notify}
            self._write(items)
        log.info("user %s changed their notification settings", name)
        return self._user(name, items[name])

    def _owners(self) -> int:
        return sum(1 for u in self.list() if u.role == OWNER)

    def _update(self, name: str, **changes: Any) -> User:
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            item = items.get(name)
            if item is None:
                raise AccountError(f"no user {name!r}")
            items[name] = {**item, **changes, "generation": int(item.get("generation", 0)) + 1}
            self._write(items)
        log.info("changed user %s (%s)", name, ", ".join(k if k != "hash" else "password" for k in changes))
        return self._user(name, items[name])

    def remove(self, name: str) -> bool:
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            item = items.get(name)
            if item is None:
                return False
            if item["role"] == OWNER and sum(1 for i in items.values() if i["role"] == OWNER) <= 1 \
                    and len(items) > 1:
                raise AccountError("this is the only owner: make another owner first")
            del items[name]
            self._write(items)
        log.info("removed user %s", name)
        return True


# -------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class Session:
    """A browser session as the server keeps it (by the hash of its id; the id is only in the cookie)."""

    key: str
    kind: str  # "user" or "token"
    subject: str  # the user's name, or the token's id
    created: float
    expires: float
    generation: int
    csrf_sha256: str


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SessionStore(_JsonFile):
    """``sessions.json``: who is logged in from which browser, until when.

    Written when a session starts or ends (a login, a logout), never per request.
    """

    key = "sessions"

    def __init__(self, path: Path, users: UserStore, tokens: Any, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(path, now)
        self.users = users
        self.tokens = tokens

    def _check(self, key: str, item: Any) -> None:
        if not isinstance(item, dict) or item.get("kind") not in ("user", "token"):
            raise ValueError(f"sessions[{key[:8]}…]: malformed entry")

    @staticmethod
    def _session(key: str, item: dict[str, Any]) -> Session:
        return Session(key, item["kind"], str(item["subject"]), float(item["created"]), float(item["expires"]),
                       int(item.get("generation", 0)), str(item["csrf_sha256"]))

    def create(self, principal: Principal, *, remember: bool = False) -> tuple[str, str, Session]:
        """A new session for ``principal``: (session id, CSRF token, record). The two secrets go into
        cookies; only their hashes are kept."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._now()
        generation = 0
        if principal.kind == "user":
            user = self.users.get(principal.id)
            generation = user.generation if user is not None else 0
        lifetime = REMEMBERED_SESSION_S if remember else SESSION_S
        expires = now + lifetime if principal.expires is None else min(now + lifetime, principal.expires)
        item = {"kind": principal.kind, "subject": principal.id, "created": round(now, 3),
                "expires": round(expires, 3), "generation": generation, "csrf_sha256": _sha256(csrf)}
        key = _sha256(session_id)
        with self._lock, file_lock(self.path, AccountError):
            items = {k: v for k, v in self._reload(strict=True).items() if float(v["expires"]) > now}
            mine = sorted((k for k, v in items.items() if v["kind"] == principal.kind
                           and v["subject"] == principal.id), key=lambda k: float(items[k]["created"]))
            for old in mine[: max(0, len(mine) - MAX_SESSIONS_PER_USER + 1)]:
                del items[old]
            items[key] = item
            self._write(items)
        return session_id, csrf, self._session(key, item)

    def verify(self, session_id: str) -> tuple[Session, Principal] | None:
        """The session and who it belongs to, if it is valid now. Never raises."""
        if not session_id or len(session_id) > 128:
            return None
        key = _sha256(session_id)
        with self._lock:
            try:
                item = self._reload(strict=False).get(key)
            except Exception:
                log.exception("cannot read %s", self.path)
                return None
        if item is None:
            return None
        session = self._session(key, item)
        now = self._now()
        if now >= session.expires:
            return None
        if session.kind == "user":
            user = self.users.get(session.subject)
            if user is None or user.generation != session.generation or user.expired(now):
                return None
            return session, Principal("user", user.name, user.name, user.role, user.expires, key)
        info = self.tokens.known(session.subject)
        if info is None or info.expired(now):
            return None
        return session, Principal("token", info.id, info.name, info.role, info.expires, key)

    @staticmethod
    def csrf_matches(session: Session, csrf: str) -> bool:
        return hmac.compare_digest(_sha256(csrf or ""), session.csrf_sha256)

    def end(self, key: str) -> None:
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            if items.pop(key, None) is not None:
                self._write(items)

    def end_all(self, kind: str, subject: str) -> int:
        with self._lock, file_lock(self.path, AccountError):
            items = dict(self._reload(strict=True))
            keep = {k: v for k, v in items.items() if not (v["kind"] == kind and v["subject"] == subject)}
            if len(keep) != len(items):
                self._write(keep)
            return len(items) - len(keep)


def principal_for_token(info: Any) -> Principal:
    return Principal("token", info.id, info.name, info.role, info.expires)


def principal_for_user(user: User) -> Principal:
    return Principal("user", user.name, user.name, user.role, user.expires)

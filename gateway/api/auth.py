"""API tokens: creating, listing, revoking and checking the bearer tokens of the HTTP API.

Each token has a role (``owner``, ``caregiver``, ``installer``, ``resident``; see
:mod:`gateway.api.accounts`) and may expire (an installer's must); tokens written before roles existed
read as ``owner``, which is what they could do.

The token file (``[api] token_file``, by default ``<data dir>/tokens.json``) holds only a salted
hash of each token, never the token itself: the plaintext is shown once, when the token is made.
The file is shared by the running gateway and the ``hearth token`` CLI; a store re-reads it when it
changes on disk, so a token revoked from the CLI stops working in a running gateway at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.api.private_files import file_lock, write_private_file
from gateway.errors import HearthError

__all__ = ["TOKEN_PREFIX", "TokenError", "TokenInfo", "TokenStore", "token_command"]

log = logging.getLogger("hearth.api.auth")

TOKEN_PREFIX = "hth"
FILE_VERSION = 1
# 32 random bytes: 256 bits, so guessing is hopeless and a plain hash is enough (see _digest).
SECRET_BYTES = 32
ID_HEX_CHARS = 12
NAME_MAX_CHARS = 64
# Remembering when a token was last used must not turn every API request into a write to the SD
# card: the time is kept in memory and written at most this often.
LAST_USED_PERSIST_INTERVAL_S = 300.0

_TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}_([0-9a-f]{{{ID_HEX_CHARS}}})_([A-Za-z0-9_-]{{40,64}})")
_NAME_RE = re.compile(r"\w[\w .@:+-]*")


class TokenError(HearthError):
    """The token file cannot be read or written, or a token operation does not make sense."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is public about a token: everything but the secret and its hash."""

    id: str
    name: str
    created: float
    last_used: float | None = None
    # Tokens made before roles existed had full access: they read as "owner".
    role: str = "owner"
    # Epoch seconds after which the token stops working (installers' access is time-limited); None: never.
    expires: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created": self.created, "last_used": self.last_used,
                "role": self.role, "expires": self.expires}

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True)
class _Record:
    info: TokenInfo
    salt: str
    digest: str


def _digest(salt: str, token: str) -> str:
    # A slow KDF (scrypt, argon2) protects low-entropy secrets such as passwords against offline
    # guessing. These tokens are 256 random bits: no dictionary helps, and a single salted SHA-256
    # is as unguessable as the token itself, while a KDF would cost ~100 ms on a Pi per request.
    return hashlib.sha256(bytes.fromhex(salt) + token.encode("utf-8")).hexdigest()


# Compared against when a token names an id we do not know, so that a miss costs the same as a hit.
_DUMMY_SALT = "00" * 16
_DUMMY_DIGEST = _digest(_DUMMY_SALT, "")


class TokenStore:
    """The token file. Thread-safe (the API checks tokens in a worker thread, off the event loop)."""

    def __init__(self, path: Path, *, now: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._now = now
        self._lock = threading.RLock()
        self._records: dict[str, _Record] = {}
        self._signature: tuple[int, int, int] | None = None
        self._load_error: str | None = None
        self._last_used: dict[str, float] = {}
        self._last_persist = now()

    # ---------------------------------------------------------------- public

    def create(self, name: str, role: str = "owner", expires: float | None = None) -> tuple[str, TokenInfo]:
        """Make a new token. Returns its plaintext (shown once, never stored) and its public info."""
        from gateway.api.accounts import check_role_and_expiry

        check_role_and_expiry(role, expires, self._now(), error=TokenError)
        name = name.strip()
        if not name or len(name) > NAME_MAX_CHARS or not _NAME_RE.fullmatch(name):
            raise TokenError(
                f"invalid token name {name[:80]!r}: use 1-{NAME_MAX_CHARS} letters, digits, spaces or . @ : + - _"
            )
        with self._lock, self._file_lock():
            token, info = self._create_locked(name, self._reload(strict=True), role, expires)
        log.info("created API token %s (%s, %s)", info.id, info.name, info.role)
        return token, info

    def _create_locked(self, name: str, records: dict[str, _Record], role: str = "owner",
                       expires: float | None = None) -> tuple[str, TokenInfo]:
        if any(r.info.name == name for r in records.values()):
            raise TokenError(f"a token named {name!r} exists already (revoke it first, or pick another name)")
        token_id = secrets.token_hex(ID_HEX_CHARS // 2)
        while token_id in records:  # pragma: no cover - 48 random bits
            token_id = secrets.token_hex(ID_HEX_CHARS // 2)
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        salt = secrets.token_hex(16)
        info = TokenInfo(token_id, name, round(self._now(), 3), role=role, expires=expires)
        self._write({**records, token_id: _Record(info, salt, _digest(salt, token))})
        return token, info

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first, with the freshest last-used time we know."""
        with self._lock:
            records = self._reload(strict=True)
            return sorted(
                (self._with_last_used(r.info) for r in records.values()), key=lambda i: (i.created, i.id)
            )

    def revoke(self, id_or_name: str) -> bool:
        """Remove the token with this id (or, failing that, this name). False if there is none."""
        with self._lock, self._file_lock():
            records = self._reload(strict=True)
            victim = records.get(id_or_name)
            if victim is None:
                victim = next((r for r in records.values() if r.info.name == id_or_name), None)
            if victim is None:
                return False
            self._write({k: r for k, r in records.items() if k != victim.info.id})
            self._last_used.pop(victim.info.id, None)
        log.info("revoked API token %s (%s)", victim.info.id, victim.info.name)
        return True

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info if it is valid now, else None. Never raises; compares in constant time.

        Fails closed: a token file that cannot be read accepts no token (and says so in the log).
        """
        match = _TOKEN_RE.fullmatch(token) if len(token) < 128 else None
        with self._lock:
            try:
                records = self._reload(strict=False)
            except Exception:  # a broken file must never break the request path
                log.exception("cannot check API tokens")
                records = {}
            record = records.get(match.group(1)) if match else None
            salt, expected = (record.salt, record.digest) if record else (_DUMMY_SALT, _DUMMY_DIGEST)
            ok = hmac.compare_digest(_digest(salt, token), expected)
            now = self._now()
            if not ok or record is None or record.info.expired(now):
                return None
            self._last_used[record.info.id] = now
            if now - self._last_persist >= LAST_USED_PERSIST_INTERVAL_S:
                self._persist_last_used()
            return self._with_last_used(record.info)

    def known(self, token_id: str) -> TokenInfo | None:
        """The token with this id, if it exists (for sessions opened with a token). Never raises."""
        with self._lock:
            try:
                record = self._reload(strict=False).get(token_id)
            except Exception:
                log.exception("cannot check API tokens")
                return None
            return None if record is None else record.info

    def is_empty(self) -> bool:
        with self._lock:
            return not self._reload(strict=True)

    def ensure_initial(self, name: str = "initial") -> str | None:
        """On first start: create a token when there is none and return its plaintext; else None."""
        with self._lock, self._file_lock():
            records = self._reload(strict=True)
            if records:
                return None
            token, info = self._create_locked(name, records)
        log.info("created the initial API token %s (%s)", info.id, info.name)
        return token

    def flush(self) -> None:
        """Write last-used times kept in memory (on shutdown)."""
        with self._lock:
            if self._last_used:
                self._persist_last_used()

    # ---------------------------------------------------------------- file

    def _with_last_used(self, info: TokenInfo) -> TokenInfo:
        seen = self._last_used.get(info.id)
        if seen is None or (info.last_used is not None and info.last_used >= seen):
            return info
        return replace(info, last_used=round(seen, 3))

    def _reload(self, *, strict: bool) -> dict[str, _Record]:
        """The records on disk, read again only when the file changed. ``strict``: raise on a bad file."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._signature, self._load_error = {}, None, None
            return self._records
        except OSError as err:
            self._fail(f"cannot read {self.path}: {err.strerror}", strict)
            return self._records
        # The inode changes on every atomic replace, so this catches rewrites within one mtime tick.
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._signature:
            if self._load_error and strict:
                raise TokenError(self._load_error)
            return self._records
        self._signature = signature
        try:
            self._records = self._parse(self.path.read_bytes())
            self._load_error = None
        except TokenError as err:
            self._fail(str(err), strict)
        except OSError as err:
            self._fail(f"cannot read {self.path}: {err.strerror}", strict)
        if st.st_mode & 0o077:
            log.warning("token file %s is readable by other users; run: chmod 600 %s", self.path, self.path)
        return self._records

    def _fail(self, message: str, strict: bool) -> None:
        if message != self._load_error:
            log.error("%s; no API token is accepted until it is fixed", message)
        self._records, self._load_error = {}, message
        if strict:
            raise TokenError(message)

    def _parse(self, raw: bytes) -> dict[str, _Record]:
        where = str(self.path)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise TokenError(f"{where}: not valid JSON ({err})") from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise TokenError(f"{where}: expected an object with a 'tokens' list")
        from gateway.api.accounts import ROLES as roles

        records: dict[str, _Record] = {}
        for index, item in enumerate(data["tokens"]):
            try:
                info = TokenInfo(
                    id=str(item["id"]),
                    name=str(item["name"]),
                    created=float(item["created"]),
                    last_used=None if item.get("last_used") is None else float(item["last_used"]),
                    role=str(item.get("role", "owner")),
                    expires=None if item.get("expires") is None else float(item["expires"]),
                )
                if info.role not in roles:
                    raise ValueError(f"unknown role {info.role!r}")
                record = _Record(info, str(item["salt"]), str(item["sha256"]))
                bytes.fromhex(record.salt)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise TokenError(f"{where}: tokens[{index}]: malformed entry ({type(err).__name__}: {err})") from None
            records[info.id] = record
        return records

    def _write(self, records: dict[str, _Record]) -> None:
        items = []
        for record in sorted(records.values(), key=lambda r: (r.info.created, r.info.id)):
            items.append({**record.info.as_dict(), "salt": record.salt, "sha256": record.digest})
        text = json.dumps({"version": FILE_VERSION, "tokens": items}, indent=2) + "\n"
        write_private_file(self.path, text, TokenError)
        self._records = records
        st = self.path.stat()
        self._signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        self._load_error = None

    def _file_lock(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.path, TokenError)

    def _persist_last_used(self) -> None:
        self._last_persist = self._now()
        try:
            with self._file_lock():
                records = self._reload(strict=True)
                changed = False
                for token_id, seen in self._last_used.items():
                    record = records.get(token_id)  # a token revoked meanwhile stays revoked
                    if record is not None and (record.info.last_used or 0) < seen:
                        records[token_id] = replace(record, info=replace(record.info, last_used=round(seen, 3)))
                        changed = True
                if changed:
                    self._write(dict(records))
        except TokenError as err:
            log.warning("cannot record when API tokens were last used: %s", err)


# -------------------------------------------------------------------- CLI


def _when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "never"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


def token_command(action: str, token_file: Path, name: str | None, out: TextIO, *, role: str = "owner",
                  expires: float | None = None) -> int:
    """``hearth token create NAME [--role R] [--expires E] | list | revoke ID_OR_NAME``. The exit status."""
    store = TokenStore(token_file)
    try:
        if action == "create":
            if not name:
                print("Give the token a name, e.g.: hearth token create kitchen-tablet --role caregiver", file=out)
                return 2
            token, info = store.create(name, role, expires)
            until = f", until {_when(info.expires)}" if info.expires is not None else ""
            print(f"Created API token {info.name!r} (id {info.id}, role {info.role}{until}):", file=out)
            print("", file=out)
            print(f"    {token}", file=out)
            print("", file=out)
            print("Copy it now: it is not stored and will not be shown again.", file=out)
            print("Send it as the header  Authorization: Bearer <token>", file=out)
            return 0
        if action == "list":
            tokens = store.list()
            if not tokens:
                print(f"No API tokens in {token_file}. Create one with: hearth token create NAME", file=out)
                return 0
            width = max(4, *(len(t.name) for t in tokens))
            print(f"{'ID':<{ID_HEX_CHARS}}  {'NAME':<{width}}  {'ROLE':<9}  {'CREATED':<20}  {'LAST USED':<20}  "
                  "EXPIRES", file=out)
            for info in tokens:
                expires = "never" if info.expires is None else _when(info.expires)
                if info.expires is not None and info.expired(time.time()):
                    expires += " (expired)"
                print(
                    f"{info.id:<{ID_HEX_CHARS}}  {info.name:<{width}}  {info.role:<9}  {_when(info.created):<20}  "
                    f"{_when(info.last_used):<20}  {expires}",
                    file=out,
                )
            return 0
        if action == "revoke":
            if not name:
                print("Say which token: hearth token revoke ID_OR_NAME (see: hearth token list)", file=out)
                return 2
            if store.revoke(name):
                print(f"Revoked API token {name!r}. It stops working immediately, also in a running gateway.",
                      file=out)
                return 0
            print(f"No API token with id or name {name!r} (see: hearth token list).", file=out)
            return 1
        print(f"Unknown token action {action!r}: use create, list or revoke.", file=out)
        return 2
    except TokenError as err:
        print(f"error: {err}", file=out)
        return 1

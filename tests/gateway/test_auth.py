"""API tokens: the token file holds no secret, revocation reaches other instances, verify fails closed."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from gateway.api.auth import LAST_USED_PERSIST_INTERVAL_S, TokenError, TokenStore, token_command


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tokens.json"


def test_create_verify_and_file_holds_no_secret(token_file: Path) -> None:
    store = TokenStore(token_file)
    assert store.is_empty()
    token, info = store.create("kitchen tablet")
    assert token.startswith(f"hth_{info.id}_")
    assert store.verify(token) is not None
    assert store.verify(token).name == "kitchen tablet"  # type: ignore[union-attr]

    text = token_file.read_text()
    secret = token.rsplit("_", 1)[-1]
    assert token not in text and secret not in text and secret[:16] not in text
    entry = json.loads(text)["tokens"][0]
    assert entry["id"] == info.id and entry["name"] == "kitchen tablet"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    # no temporary files left behind
    assert sorted(p.name for p in token_file.parent.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_wrong_tokens_are_rejected(token_file: Path) -> None:
    store = TokenStore(token_file)
    token, _ = store.create("a")
    prefix, token_id, secret = token.split("_", 2)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in (
        "",
        "hth",
        f"{prefix}_{token_id}_{flipped}",
        f"{prefix}_000000000000_{secret}",
        token + "x",
        token.upper(),
        "x" * 10_000,
        "hth_" + "é" * 50,
    ):
        assert store.verify(bad) is None, bad


def test_revoke_by_id_or_name_reaches_other_instances(token_file: Path) -> None:
    gateway_store = TokenStore(token_file)
    cli_store = TokenStore(token_file)
    token_a, info_a = gateway_store.create("a")
    token_b, _ = gateway_store.create("b")
    assert gateway_store.verify(token_a) and gateway_store.verify(token_b)

    assert cli_store.revoke(info_a.id)
    assert gateway_store.verify(token_a) is None
    assert gateway_store.verify(token_b) is not None
    assert cli_store.revoke("b")
    assert gateway_store.verify(token_b) is None
    assert not cli_store.revoke("b")
    assert gateway_store.is_empty()


def test_names_are_unique_and_checked(token_file: Path) -> None:
    store = TokenStore(token_file)
    store.create("phone")
    with pytest.raises(TokenError, match="exists already"):
        store.create("phone")
    for bad in ("", "   ", "x" * 65, "new\nline", "../evil"):
        with pytest.raises(TokenError, match="invalid token name"):
            store.create(bad)


def test_ensure_initial_only_once(token_file: Path) -> None:
    store = TokenStore(token_file)
    token = store.ensure_initial()
    assert token is not None and store.verify(token) is not None
    assert store.ensure_initial() is None
    assert TokenStore(token_file).ensure_initial() is None
    assert [t.name for t in store.list()] == ["initial"]


def test_corrupt_file_fails_closed(token_file: Path) -> None:
    store = TokenStore(token_file)
    token, _ = store.create("a")
    token_file.write_text("{not json")
    assert store.verify(token) is None
    with pytest.raises(TokenError, match="not valid JSON"):
        store.list()
    # ensure_initial must not overwrite a file it cannot read
    with pytest.raises(TokenError):
        TokenStore(token_file).ensure_initial()
    assert token_file.read_text() == "{not json"
    token_file.write_text(json.dumps({"tokens": [{"id": "x"}]}))
    with pytest.raises(TokenError, match=r"tokens\[0\]"):
        store.list()


def test_last_used_is_kept_in_memory_and_written_rarely(token_file: Path) -> None:
    now = [1_000_000.0]
    store = TokenStore(token_file, now=lambda: now[0])
    token, _ = store.create("a")
    before = token_file.stat().st_mtime_ns, token_file.stat().st_ino
    now[0] += 10
    assert store.verify(token).last_used == 1_000_010.0  # type: ignore[union-attr]
    assert (token_file.stat().st_mtime_ns, token_file.stat().st_ino) == before
    assert TokenStore(token_file).list()[0].last_used is None
    now[0] += LAST_USED_PERSIST_INTERVAL_S
    store.verify(token)
    assert TokenStore(token_file).list()[0].last_used == now[0]


def test_persisting_last_used_does_not_resurrect_a_revoked_token(token_file: Path) -> None:
    now = [1_000_000.0]
    store = TokenStore(token_file, now=lambda: now[0])
    token_a, _ = store.create("a")
    token_b, _ = store.create("b")
    store.verify(token_a)
    TokenStore(token_file).revoke("a")
    now[0] += LAST_USED_PERSIST_INTERVAL_S + 1
    assert store.verify(token_b) is not None  # writes last-used times
    assert [t.name for t in TokenStore(token_file).list()] == ["b"]
    store.flush()
    assert store.verify(token_a) is None


def test_token_command(token_file: Path) -> None:
    out = io.StringIO()
    assert token_command("list", token_file, None, out) == 0
    assert "No API tokens" in out.getvalue()

    out = io.StringIO()
    assert token_command("create", token_file, "laptop", out) == 0
    text = out.getvalue()
    token = next(line.strip() for line in text.splitlines() if line.strip().startswith("hth_"))
    assert "will not be shown again" in text
    assert TokenStore(token_file).verify(token) is not None

    out = io.StringIO()
    assert token_command("list", token_file, None, out) == 0
    assert "laptop" in out.getvalue() and token not in out.getvalue() and "never" in out.getvalue()

    assert token_command("create", token_file, "laptop", io.StringIO()) == 1
    assert token_command("create", token_file, None, io.StringIO()) == 2
    assert token_command("revoke", token_file, None, io.StringIO()) == 2
    assert token_command("frobnicate", token_file, None, io.StringIO()) == 2
    out = io.StringIO()
    assert token_command("revoke", token_file, "nope", out) == 1
    assert "No API token" in out.getvalue()
    assert token_command("revoke", token_file, "laptop", io.StringIO()) == 0
    assert TokenStore(token_file).verify(token) is None


def test_secrets_are_not_logged(token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    store = TokenStore(token_file)
    token, _ = store.create("a")
    store.verify(token)
    store.verify(token[:-2] + "zz")
    store.revoke("a")
    # hth_<id>_<secret>: the secret itself may contain "_", so split from the left.
    secret = token.split("_", 2)[2]
    assert token not in caplog.text and secret[:12] not in caplog.text

"""HTTPS for the API (issue 20, "TLS and the provisions of ETSI EN 303 645"): beyond loopback it serves HTTPS,
with a self-signed certificate made at first start whose fingerprint it says; plain HTTP there only by an
explicit setting. Tested on loopback with tls = "on" (the same code path; nothing here listens beyond it)."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.broker import free_port
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, api_port: int) -> Path:
    config = tmp_path / "house.toml"
    config.write_text(f'[mqtt]\nenabled = false\n[mdns]\nenabled = false\n[adapters.ble]\nenabled = false\n'
                      f'[store]\npath = "{tmp_path / "hearth.db"}"\n[api]\nport = {api_port}\ntls = "on"\n')
    return config


def test_the_api_serves_https_with_the_certificate_it_made_and_says_its_fingerprint(tmp_path: Path) -> None:
    port = free_port()
    gateway = GatewayProcess(_config(tmp_path, port), tmp_path / "data")
    gateway.start()
    try:
        said = re.search(r"HTTPS certificate (\S+) \(made now\), SHA-256 fingerprint ([0-9A-F:]{95})",
                         gateway.log_text())
        assert said, gateway.log_text()
        certfile, fingerprint = Path(said.group(1)), said.group(2)
        assert certfile.parent == tmp_path / "data" / "tls"
        assert (certfile.parent / "api-key.pem").stat().st_mode & 0o077 == 0  # the key is the owner's only
        # A client that pins the certificate (as the owner does by comparing the fingerprint) gets in.
        pinned = ssl.create_default_context(cafile=str(certfile))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=pinned, timeout=10) as response:
            health = json.loads(response.read())
        assert health["api"] == {"tls": True, "fingerprint": fingerprint}
        # Plain HTTP on the same port gets nothing.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
    finally:
        assert gateway.stop() == 0
    # The next start keeps the certificate (and so its fingerprint).
    again = GatewayProcess(_config(tmp_path, port), tmp_path / "data")
    again.start()
    try:
        assert f"SHA-256 fingerprint {fingerprint}" in again.log_text()
        assert "(made now)" not in again.log_text()
    finally:
        again.stop()


def test_plain_http_beyond_loopback_needs_an_explicit_setting() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config('[api]\nhost = "0.0.0.0"\ntls = "off"\n')
    assert "clear text" in str(refused.value.problems[0]) and "insecure_http" in str(refused.value.problems[0])
    config = parse_config('[api]\nhost = "0.0.0.0"\ntls = "off"\ninsecure_http = true\n')
    assert not config.api.serves_tls()
    assert parse_config('[api]\nhost = "0.0.0.0"\n').api.serves_tls()  # "auto" beyond loopback: HTTPS
    assert not parse_config("[api]\n").api.serves_tls()  # loopback: plain HTTP, as before
    with pytest.raises(ConfigError, match="both, or neither"):
        parse_config('[api]\ncertfile = "/etc/ssl/hearth.pem"\n')

"""Without multicast: the adapter fed by a recorded mDNS (what ``hearth replay`` will inject), ``GET
/api/discovered`` behind the bearer-token middleware, the ``[mdns]`` config section and the digest maths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from adapters.shelly.auth import (
    Challenge,
    DigestCredentials,
    authorization_header,
    parse_rpc_challenge,
    parse_www_authenticate,
    rpc_auth,
    sha256_hex,
)
from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.discovered import add_discovered_routes
from gateway.hub import Hub
from gateway.mdns import MdnsSection, RecordedMdns, service_record_from_capture
from gateway.sdk import CodecError
from tests.mdns.fake_shelly import FakeShelly
from tests.mdns.helpers import Gateway, running_gateway, wait_for

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mdns" / "capture.jsonl"


def _records() -> list[dict]:
    import json

    return [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]


async def test_recorded_mdns_is_listed_but_never_dialled() -> None:
    recorded = RecordedMdns()
    async with running_gateway({}, mdns=recorded) as gw:
        for line in _records():
            recorded.deliver(service_record_from_capture(line))
        items = {i["id"]: i for i in gw.adapter.discovered()}
        assert items["shelly:shellyplus1pm-441793d69718"]["support"] == "supported"
        assert items["esphome:a0b765123456"]["support"] == "seen only"
        assert gw.adapter.devices == []  # a capture is not a network: nothing is connected to
        assert gw.hub.devices == {}


async def test_a_discovered_shelly_is_connected_through_the_injected_service() -> None:
    recorded = RecordedMdns()
    recorded.live = True  # as the real service: records worth dialling
    async with FakeShelly("plus1pm") as plus, running_gateway({}, mdns=recorded) as gw:
        recorded.deliver(service_record_from_capture({
            "type": "_shelly._tcp.local.", "name": plus.id, "addresses": ["127.0.0.1"], "port": plus.port,
            "properties": {"gen": "2", "app": "Plus1PM", "id": plus.id}}))
        await wait_for(lambda: "shelly:shellyplus1pm-441793d69718" in gw.hub.devices, what="the device")
        recorded.deliver(service_record_from_capture({"type": "_shelly._tcp.local.", "name": plus.id}), "removed")
        await wait_for(lambda: gw.hub.devices["shelly:shellyplus1pm-441793d69718"].available is False,
                       what="unavailable")
        assert gw.adapter.discovered()[0]["available"] is False


async def test_malformed_txt_from_the_network_is_reported_not_fatal() -> None:
    recorded = RecordedMdns()
    async with running_gateway({}, mdns=recorded) as gw:
        from gateway.mdns import ServiceRecord

        recorded.deliver(ServiceRecord("_shelly._tcp.local.", "shellyplus1pm-441793d69718", ("10.0.0.1",), 80,
                                       {b"gen": b"\xff", b"": b"x", b"a=b": b"c", b"id": None}))
        recorded.deliver(ServiceRecord("_hap._tcp.local.", "x\x00y", ("bogus",), -1, "not a map"))  # type: ignore[arg-type]
        assert len(gw.adapter.discovered()) == 2
        assert gw.bad_input and gw.supervisor.health["mdns"].state == "running"


@pytest.fixture
async def api_with_discovered(tmp_path: Path) -> AsyncIterator[tuple[Gateway, str, str]]:
    recorded = RecordedMdns()
    async with running_gateway({}, mdns=recorded) as gw:
        for line in _records():
            recorded.deliver(service_record_from_capture(line))
        tokens = TokenStore(tmp_path / "tokens.json")
        token, _ = tokens.create("tests")
        app = create_app(Hub(gw.hub.clock), tokens, health=lambda: {"status": "ok"})
        add_discovered_routes(app, lambda: gw.supervisor.instance("mdns"))
        async with ApiServer(app, "127.0.0.1", 0) as server:
            yield gw, server.url, token


async def test_api_lists_discovered_devices_behind_the_token(api_with_discovered: tuple[Gateway, str, str]) -> None:
    _, url, token = api_with_discovered
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/discovered") as response:
            assert response.status == 401
        auth = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{url}/api/discovered", headers=auth) as response:
            assert response.status == 200
            items = (await response.json())["discovered"]
        assert {i["family"] for i in items} == {"shelly", "esphome", "homekit", "matter", "googlecast"}
        shelly = next(i for i in items if i["family"] == "shelly")
        assert shelly["adapter"] == "mdns" and shelly["address"] == "192.168.1.217" and shelly["port"] == 80
        async with session.get(f"{url}/api/discovered?support=supported", headers=auth) as response:
            assert [i["id"] for i in (await response.json())["discovered"]] == [shelly["id"]]
        async with session.get(f"{url}/api/discovered?support=maybe", headers=auth) as response:
            assert response.status == 400 and (await response.json())["field"] == "query.support"
        async with session.get(f"{url}/api/discovered?colour=red", headers=auth) as response:
            assert response.status == 400


async def test_api_is_empty_while_the_adapter_is_not_running(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("tests")
    from gateway.clock import SystemClock

    app = create_app(Hub(SystemClock()), tokens, health=lambda: {"status": "ok"})
    add_discovered_routes(app, lambda: None)
    auth = {"Authorization": f"Bearer {token}"}
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session, \
            session.get(f"{server.url}/api/discovered", headers=auth) as response:
        assert response.status == 200 and (await response.json()) == {"discovered": [], "mdns": "off"}


def test_mdns_section() -> None:
    assert MdnsSection().enabled and MdnsSection().interfaces == "all" and MdnsSection().announce
    assert MdnsSection.model_validate({"interfaces": ["eth0"]}).interfaces == ["eth0"]
    for bad in ({"interfaces": []}, {"interfaces": "eth0"}, {"interfaces": [""]}, {"announce": "yes please"},
                {"colour": 1}):
        with pytest.raises(ValidationError):
            MdnsSection.model_validate(bad)


def test_digest_matches_rfc_7616_sha256_example() -> None:
    # RFC 7616 3.9.1, SHA-256: user Mufasa, password "Circle of Life".
    challenge = parse_www_authenticate(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    header = authorization_header(DigestCredentials("Circle of Life", "Mufasa"), challenge, "GET", "/dir/index.html",
                                  nc=1, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"' in header
    assert "nc=00000001" in header and 'opaque="FQhe' in header and "DigestCredentials" not in header


def test_rpc_auth_object_and_challenges() -> None:
    message = ('{"auth_type": "digest", "nonce": 1625038762, "nc": 1, "realm": "shellypro4pm-f008d1d8b8b8", '
               '"algorithm": "SHA-256"}')
    challenge = parse_rpc_challenge({"code": 401, "message": message})
    auth = rpc_auth(DigestCredentials("pw"), challenge, cnonce=313273957)
    ha1 = sha256_hex("admin:shellypro4pm-f008d1d8b8b8:pw")
    ha2 = sha256_hex("dummy_method:dummy_uri")
    assert auth["response"] == sha256_hex(f"{ha1}:1625038762:1:313273957:auth:{ha2}")
    assert auth["nonce"] == 1625038762 and auth["username"] == "admin" and auth["algorithm"] == "SHA-256"
    assert "pw" not in repr(DigestCredentials("pw"))
    for bad in ({"code": 401, "message": "not json"}, {"code": 500}, "x",
                {"code": 401, "message": '{"auth_type": "digest", "realm": "r", "algorithm": "MD5", "nonce": 1}'}):
        with pytest.raises(CodecError):
            parse_rpc_challenge(bad)
    for bad in ("Basic realm=x", 'Digest realm="r"', 'Digest realm="r", nonce="n", qop="auth-int"'):
        with pytest.raises(CodecError):
            parse_www_authenticate(bad)
    assert parse_www_authenticate('Digest realm="r", nonce="n"') == Challenge("r", "n", "SHA-256", None, None)


async def test_an_api_on_loopback_is_not_announced_on_the_network() -> None:
    from gateway.mdns import GatewayAnnouncement, MdnsService

    mdns = MdnsService("all")  # never opened: announcing would fail loudly, so nothing is sent
    async with GatewayAnnouncement(mdns, name="Hearth", port=8470, version="0.1.0", host="127.0.0.1") as ann:
        assert ann.infos == []

"""gateway.mqtt_wire: MQTT packets out of the broker's byte stream, however the stream is cut."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt_wire import MqttProtocolError, publish_packet, split_packets


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, *, qos: int = 0, retain: bool = False, dup: bool = False) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (b"\x00\x07" if qos else b"") + payload
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    return bytes([first]) + remaining_length(len(body)) + body


PINGRESP = b"\xd0\x00"
SUBACK = b"\x90\x03\x00\x01\x00"


class Sink:
    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self.topics: dict[bytes, str | None] = {}

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        self.items.append(("publish", (topic, payload, retain)))

    def other(self, packet: bytes) -> None:
        self.items.append(("other", packet))

    def bad(self, topic: bytes) -> None:
        self.items.append(("bad", topic))

    def feed(self, buf: bytes) -> int:
        return split_packets(buf, self.publish, self.other, self.topics, self.bad)


def feed_in_pieces(sink: Sink, stream: bytes, cuts: list[int]) -> bytes:
    """Like the session: each read appended to what the last one left over."""
    rest = b""
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        buf = rest + stream[start:cut]
        rest = buf[sink.feed(buf):]
        start = cut
    return rest


def test_qos0_publishes_are_dispatched_and_other_packets_handed_on_in_stream_order() -> None:
    sink = Sink()
    stream = (publish(b"zigbee2mqtt/lamp", b'{"state":"ON"}') + SUBACK + publish(b"a/b", b"", retain=True)
              + publish(b"q/1", b"x", qos=1) + PINGRESP + publish(b"a/b", b"2", dup=True))
    assert sink.feed(stream) == len(stream)
    assert sink.items == [
        ("publish", ("zigbee2mqtt/lamp", b'{"state":"ON"}', False)),
        ("other", SUBACK),
        ("publish", ("a/b", b"", True)),
        ("other", publish(b"q/1", b"x", qos=1)),  # QoS 1: paho acknowledges it
        ("other", PINGRESP),
        ("publish", ("a/b", b"2", False)),
    ]


def test_an_incomplete_packet_is_left_for_the_next_read() -> None:
    sink = Sink()
    big = publish(b"zigbee2mqtt/bridge/devices", b"[" + b"1," * 200_000 + b"1]")  # 4-byte remaining length
    for cut in (1, 2, 3, 4, 5, 30, len(big) - 1):
        sink.items.clear()
        assert sink.feed(big[:cut]) == 0
        assert sink.items == []
    assert sink.feed(big + b"\x30") == len(big)
    assert sink.items[0][1][1].endswith(b"1,1]")  # type: ignore[index]


@pytest.mark.parametrize("topic", [b"\xff\xfe", b""])
def test_a_topic_that_is_not_utf8_or_empty_is_skipped_and_reported(topic: bytes) -> None:
    sink = Sink()
    stream = publish(topic, b"x") + publish(b"ok", b"y")
    assert sink.feed(stream) == len(stream)
    assert sink.items == [("bad", topic), ("publish", ("ok", b"y", False))]


@pytest.mark.parametrize("stream", [
    b"\x30\xff\xff\xff\xff\x01",  # remaining length of five bytes
    b"\x30\x03\x00\x05ab",  # a topic longer than its packet
    b"\x30\x01\x00",  # no room for the topic length
])
def test_a_stream_that_is_not_mqtt_raises(stream: bytes) -> None:
    with pytest.raises(MqttProtocolError):
        Sink().feed(stream)


packets = st.one_of(
    st.builds(lambda t, p, r: publish(t.encode(), p, retain=r),
              st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
              st.binary(max_size=300), st.booleans()),
    st.builds(lambda t, p: publish(t.encode(), p, qos=1), st.text(min_size=1, max_size=10), st.binary(max_size=50)),
    st.sampled_from([PINGRESP, SUBACK]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(packets, max_size=20), st.lists(st.integers(min_value=0, max_value=8000), max_size=15))
def test_any_cut_of_the_stream_gives_the_same_packets(stream_packets: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(stream_packets)
    whole, pieces = Sink(), Sink()
    assert whole.feed(stream) == len(stream)
    assert feed_in_pieces(pieces, stream, [c for c in cuts if c < len(stream)]) == b""
    assert pieces.items == whole.items
    assert len(whole.items) == len(stream_packets)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises_anything_but_a_protocol_error(data: bytes) -> None:
    sink = Sink()
    try:
        used = sink.feed(data)
    except MqttProtocolError:
        return
    assert 0 <= used <= len(data)


# ------------------------------------------------------------------ the write side: publish_packet


def test_a_command_packet_is_the_spec_s_bytes() -> None:
    # MQTT 3.1.1 section 3.3: type 3, flags DUP 0, QoS 0, RETAIN; remaining length; topic; payload.
    assert publish_packet("a/b", b"x") == b"\x30\x06\x00\x03a/bx"
    assert publish_packet("a/b", "x", retain=True) == b"\x31\x06\x00\x03a/bx"
    assert publish_packet("t", b"y" * 200)[:5] == b"\x30\xcb\x01\x00\x01"  # 203 = 0xcb 0x01 as a varint
    assert publish_packet("ü", "é") == b"\x30\x06\x00\x02\xc3\xbc\xc3\xa9"  # text as UTF-8


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda t: "\0" not in t), st.binary(max_size=20_000),
       st.booleans())
def test_what_the_session_writes_is_what_a_reader_takes(topic: str, payload: bytes, retain: bool) -> None:
    sink = Sink()
    packet = publish_packet(topic, payload, retain)
    assert split_packets(packet, sink.publish, sink.other, sink.topics, lambda raw: None) == len(packet)
    assert sink.items == [("publish", (topic, payload, retain))]
    assert packet == publish(topic.encode(), payload, retain=retain)


def test_a_topic_or_message_over_the_protocol_s_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        publish_packet("t" * 65_536, b"")
    publish_packet("t" * 65_535, b"")  # the longest topic there is

"""MQTT 3.1.1 packets from the broker's byte stream, and QoS 0 PUBLISH packets to it: the pure half of the
session's read path and of its write path for commands.

paho-mqtt reads a packet with one ``recv`` for the command byte, one per byte of the remaining length
and one for the rest, then builds an ``MQTTMessage`` and its properties: about 16 us per message here,
as much as all of our processing of it. :func:`split_packets` instead takes whatever one ``recv``
returned (hundreds of packets under load), hands every QoS 0 PUBLISH (the whole of device traffic) to
``on_publish(topic, payload, retain)`` and every other packet (CONNACK, SUBACK, PINGRESP, QoS 1/2
PUBLISH, ...) whole to ``on_other(packet)``, in stream order, and says how far it got: the rest is an
incomplete packet to keep for the next read. The session hands those other packets to paho, which
keeps doing the protocol (acknowledgements, keepalive, reconnects).

:func:`publish_packet` is the other way: a QoS 0 PUBLISH as bytes. paho's ``publish`` and its write are
about as much Python again as the packet (a message-info object with its own condition variable, a
queue, two socket callbacks), and a scene's command waits for all of it; the session writes these itself
while paho has nothing queued (see ``MqttSession._publish_now``).

Topics are decoded once per distinct topic: ``topics`` maps a topic's bytes to its text; the caller
bounds it. A topic that is empty or not UTF-8 (the spec forbids both) goes to ``on_bad_topic`` instead,
and the message is skipped.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_REMAINING_LENGTH", "MqttProtocolError", "publish_packet", "split_packets"]

# The largest remaining length four bytes can encode (the protocol's limit: 256 MB).
MAX_REMAINING_LENGTH = 268_435_455

PublishCallback = Callable[[str, bytes, bool], None]


class MqttProtocolError(ValueError):
    """The stream is not MQTT (a remaining length over four bytes, a topic longer than its packet)."""


def split_packets(
    buf: bytes,
    on_publish: PublishCallback,
    on_other: Callable[[bytes], None],
    topics: dict[bytes, str | None],
    on_bad_topic: Callable[[bytes], None],
) -> int:
    """Dispatch every complete packet in ``buf``; return the offset of the first incomplete one.

    Raises :class:`MqttProtocolError` on a stream that cannot be MQTT (the connection must then be
    dropped: nothing after it can be trusted).
    """
    n = len(buf)
    pos = 0
    while pos + 2 <= n:
        first = buf[pos]
        byte = buf[pos + 1]
        i = pos + 2
        if byte < 128:
            length = byte
        else:
            length = byte & 127
            shift = 7
            while True:
                if i >= n:
                    return pos
                byte = buf[i]
                i += 1
                length |= (byte & 127) << shift
                if byte < 128:
                    break
                shift += 7
                if shift > 21:
                    raise MqttProtocolError("remaining length longer than four bytes")
        end = i + length
        if end > n:
            return pos
        if first & 0xF6 == 0x30:  # PUBLISH (type 3) at QoS 0 (bits 2-1 clear); bit 3 DUP, bit 0 RETAIN
            if length < 2:
                raise MqttProtocolError("PUBLISH without a topic length")
            topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
            if topic_end > end:
                raise MqttProtocolError("PUBLISH topic longer than its packet")
            raw_topic = buf[i + 2:topic_end]
            topic = topics.get(raw_topic, "")
            if topic == "":
                try:
                    topic = raw_topic.decode("utf-8")
                except UnicodeDecodeError:
                    topic = None
                if topic:
                    topics[raw_topic] = topic
            if topic:
                on_publish(topic, buf[topic_end:end], bool(first & 1))
            else:
                on_bad_topic(raw_topic)
        else:
            on_other(buf[pos:end])
        pos = end
    return pos


def publish_packet(topic: str, payload: bytes | str, retain: bool = False) -> bytes:
    """A QoS 0 PUBLISH of ``payload`` (text is sent as UTF-8) to ``topic``, as MQTT 3.1.1 writes it.

    Raises ValueError for a topic over 65,535 bytes or a packet over the protocol's 256 MB (as paho does).
    The topic's wildcards are the caller's to refuse.
    """
    raw_topic = topic.encode("utf-8")
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(raw_topic) > 65535:
        raise ValueError(f"MQTT topic longer than 65535 bytes: {topic[:60]!r}...")
    length = 2 + len(raw_topic) + len(data)
    if length > MAX_REMAINING_LENGTH:
        raise ValueError(f"MQTT message of {length} bytes is over the protocol's limit")
    first = 0x31 if retain else 0x30
    if length < 128:  # most commands: a two-byte fixed header
        header = bytes((first, length, len(raw_topic) >> 8, len(raw_topic) & 0xFF))
    else:
        encoded = bytearray((first,))
        while True:
            length, digit = divmod(length, 128)
            encoded.append(digit | 0x80 if length else digit)
            if not length:
                break
        encoded += len(raw_topic).to_bytes(2, "big")
        header = bytes(encoded)
    return b"".join((header, raw_topic, data))

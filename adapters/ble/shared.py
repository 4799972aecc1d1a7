"""What the BLE adapter and the BLE-to-MQTT gateway adapter of one gateway share.

Both receive advertisements of the same devices (one device ``ble:<mac>``, whichever receiver heard it),
so they share the decoder state (a packet heard by the local radio and by a gateway is one packet: a button
press fires once), the bind keys of both config sections, and a channel on which every sighting is offered
to the presence tracker (tags are configured once, in ``[adapters.ble]``).

The SDK has no shared-service slot for this, so the object is found through the gateway's clock, the one
object every adapter context of a gateway holds (and a replay or test has its own): a weak mapping, so a
stopped gateway's state goes with its clock.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from adapters.ble.decoders import Advertisement, DecoderState, KeyRing

__all__ = ["SharedBle", "SightingListener", "shared_for"]

# (advertisement, receiver name, area the receiver is bound to or None)
SightingListener = Callable[[Advertisement, str, "str | None"], None]


class SharedBle:
    def __init__(self) -> None:
        self.decoder_state = DecoderState()
        self.keys = KeyRing()
        self._listeners: list[SightingListener] = []

    def listen(self, listener: SightingListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unlisten() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unlisten

    def offer(self, adv: Advertisement, receiver: str, area: str | None) -> None:
        for listener in tuple(self._listeners):
            listener(adv, receiver, area)


_SHARED: weakref.WeakKeyDictionary[Any, SharedBle] = weakref.WeakKeyDictionary()


def shared_for(clock: Any) -> SharedBle:
    shared = _SHARED.get(clock)
    if shared is None:
        shared = _SHARED[clock] = SharedBle()
    return shared

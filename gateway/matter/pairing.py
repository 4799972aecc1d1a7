"""The bridge's commissioning data: a setup passcode and discriminator generated once per house and kept in
``<data>/matter/pairing.json`` (mode 0600), and the codes a person types or scans from them.

The codes are computed here, not asked of the sidecar, so that ``hearth matter pair`` works while the gateway is
stopped: the 11-digit manual pairing code and the ``MT:`` QR payload of the Matter Core Specification
(§ 5.1.3 and § 5.1.4.1; the same as matter.js's ManualPairingCodeCodec and QrPairingCodeCodec, which a test
checks).
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.errors import HearthError

__all__ = ["PairingData", "PairingError", "fabric_dir", "load_or_create", "manual_code", "matter_dir", "qr_payload",
           "reset_fabrics"]

# The specification forbids these passcodes (§ 5.1.7.1): trivially guessed, and 20202021 is every SDK's default.
INVALID_PASSCODES = frozenset({0, 11111111, 22222222, 33333333, 44444444, 55555555, 66666666, 77777777, 88888888,
                               99999999, 12345678, 87654321, 20202021})
PASSCODE_MAX = 99999998
DISCRIMINATOR_MAX = 4095
# "Discoverable over IP" (bit 2 of the QR code's discovery capabilities): a bridge needs no BLE or SoftAP.
DISCOVERY_ON_IP = 1 << 2


class PairingError(HearthError):
    """The pairing file cannot be read or written, or a fabric reset cannot be done now."""


@dataclass(frozen=True, slots=True)
class PairingData:
    passcode: int
    discriminator: int
    #: The bridge's serial number and unique id (16 hex digits), made with the passcode.
    serial: str


def matter_dir(data_dir: Path) -> Path:
    return data_dir / "matter"


def fabric_dir(data_dir: Path) -> Path:
    """Where matter.js keeps the fabrics (controllers that paired) and the bridge's endpoint numbers."""
    return matter_dir(data_dir) / "fabrics"


def _new_passcode() -> int:
    while True:
        passcode = 1 + secrets.randbelow(PASSCODE_MAX)
        if passcode not in INVALID_PASSCODES:
            return passcode


def load_or_create(data_dir: Path) -> PairingData:
    """The house's pairing data, made (randomly, from the OS's CSPRNG) on first use."""
    path = matter_dir(data_dir) / "pairing.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        data = PairingData(int(raw["passcode"]), int(raw["discriminator"]), str(raw["serial"]))
        if data.passcode in INVALID_PASSCODES or not 0 < data.passcode <= PASSCODE_MAX \
                or not 0 <= data.discriminator <= DISCRIMINATOR_MAX:
            raise ValueError("passcode or discriminator out of range")
        return data
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PairingError(f"{path}: {err} (delete it to make new pairing data; paired controllers keep "
                           "working)") from err
    from gateway.api.private_files import write_private_file

    data = PairingData(_new_passcode(), secrets.randbelow(DISCRIMINATOR_MAX + 1), secrets.token_hex(8))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(path, json.dumps(asdict(data), indent=2) + "\n", PairingError)
    return data


def reset_fabrics(data_dir: Path) -> bool:
    """Forget every controller that paired (the fabrics): the bridge is new to all of them. True: there was
    something to forget."""
    folder = fabric_dir(data_dir)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


# -------------------------------------------------------------------- the manual pairing code (§ 5.1.4.1)

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VERHOEFF_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _verhoeff_check_digit(digits: str) -> str:
    check = 0
    for i, char in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[(i + 1) % 8][int(char)]]
    return str(_VERHOEFF_INV[check])


def manual_code(passcode: int, discriminator: int) -> str:
    """The 11-digit manual pairing code (no vendor and product id in it), as controllers' "enter code" takes it."""
    short_discriminator = discriminator >> 8  # the code carries the top 4 of the 12 bits
    first = short_discriminator >> 2
    second = ((short_discriminator & 0x3) << 14) | (passcode & 0x3FFF)
    third = passcode >> 14
    digits = f"{first}{second:05d}{third:04d}"
    return digits + _verhoeff_check_digit(digits)


def format_manual_code(code: str) -> str:
    """``3497-011-2332``: as printed on devices."""
    return f"{code[:4]}-{code[4:7]}-{code[7:]}"


# -------------------------------------------------------------------- the QR code's payload (§ 5.1.3)

_BASE38 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."


def _base38(data: bytes) -> str:
    out = []
    for start in range(0, len(data), 3):
        chunk = data[start:start + 3]
        value = int.from_bytes(chunk, "little")
        chars = {3: 5, 2: 4, 1: 2}[len(chunk)]
        for _ in range(chars):
            value, digit = divmod(value, 38)
            out.append(_BASE38[digit])
    return "".join(out)


def qr_payload(passcode: int, discriminator: int, vendor_id: int, product_id: int,
               discovery: int = DISCOVERY_ON_IP) -> str:
    """The ``MT:...`` text a QR code carries (flow: standard, version 0)."""
    fields = ((0, 3), (vendor_id, 16), (product_id, 16), (0, 2), (discovery, 8), (discriminator, 12),
              (passcode, 27), (0, 4))
    bits = 0
    offset = 0
    for value, width in fields:  # packed least significant bit first, in this order
        bits |= (value & ((1 << width) - 1)) << offset
        offset += width
    return "MT:" + _base38(bits.to_bytes(offset // 8, "little"))


def pairing_info(data: PairingData, vendor_id: int, product_id: int) -> dict[str, Any]:
    """What a person needs to pair: the manual code (plain and formatted) and the QR payload."""
    code = manual_code(data.passcode, data.discriminator)
    return {"manual_code": code, "manual_code_formatted": format_manual_code(code),
            "qr_payload": qr_payload(data.passcode, data.discriminator, vendor_id, product_id),
            "discriminator": data.discriminator}

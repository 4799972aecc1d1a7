"""The API's TLS certificate when it listens beyond loopback: the owner's own, or one made at first start.

A self-signed certificate cannot be checked by a browser against an authority, so the gateway says its
SHA-256 fingerprint (at start, in ``/healthz``): the owner compares it once with what the browser shows, as
with an SSH host key. The key is ECDSA P-256 (fast on a Pi), kept in the data directory with mode 0600, and
the certificate names the machine's host name, ``localhost`` and the address the API listens on.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

# Ten years: a house does not renew certificates; the fingerprint is what the owner checks.
VALID_DAYS = 3650


@dataclass(frozen=True)
class ServerCert:
    certfile: Path
    keyfile: Path
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:…" as browsers show it
    made: bool  # made now (first start), not found


def fingerprint_of(certfile: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def ensure_self_signed(folder: Path, host: str) -> ServerCert:
    """``api-cert.pem`` and ``api-key.pem`` in ``folder``, made now if they are not there."""
    certfile, keyfile = folder / "api-cert.pem", folder / "api-key.pem"
    if certfile.exists() and keyfile.exists():
        return ServerCert(certfile, keyfile, fingerprint_of(certfile), made=False)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname() or "hearth"
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    if "." not in hostname:
        names.append(x509.DNSName(f"{hostname}.local"))  # how mDNS names it on the LAN
    for address in {host, "127.0.0.1", "::1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address.strip("[]"))))
        except ValueError:
            if address and address not in (hostname, "localhost"):
                names.append(x509.DNSName(address))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hearth on {hostname}"[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(keyfile, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), 0o600)
    _write(certfile, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ServerCert(certfile, keyfile, fingerprint_of(certfile), made=True)


def server_context(cert: ServerCert) -> ssl.SSLContext:
    """TLS 1.2 or newer, Python's default ciphers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert.certfile, cert.keyfile)
    return context


def _write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)

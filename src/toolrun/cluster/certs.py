"""A cluster's certificates: a CA of its own, and one certificate each for the scheduler, the
daemon's Dask client and every worker (``toolrun cluster certs OUT_DIR``).

Dask's TLS is mutual and checks only that a peer's certificate is signed by the cluster's CA
(not its host name: machines are often reached by address), so the CA is what admits a
machine. The folder is laid out for copying: ``daemon/`` goes to the daemon's machine,
``workers/NAME/`` to that worker's, and ``ca.key`` stays with whoever adds machines later
(running the command again with the same OUT_DIR signs new workers with the same CA).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, UsageError
from ..records import record
from ..tools.versions import is_tool_name

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

CA_CERT, CA_KEY = "ca.crt", "ca.key"
DAEMON_DIR, WORKERS_DIR = "daemon", "workers"
CA_DAYS = 3650
DEFAULT_DAYS = 825


@record(frozen=True)
class DaemonCerts:
    """What ``daemon --cluster-certs DIR`` reads: the CA, the scheduler's pair (when the daemon
    hosts it) and the client's pair (the daemon submitting steps)."""

    ca: Path
    scheduler_cert: Path
    scheduler_key: Path
    client_cert: Path
    client_key: Path


@record(frozen=True)
class WorkerCerts:
    """What ``worker --certs DIR`` reads."""

    ca: Path
    cert: Path
    key: Path


def daemon_certs(folder: Path) -> DaemonCerts:
    certs = DaemonCerts(
        ca=folder / CA_CERT,
        scheduler_cert=folder / "scheduler.crt",
        scheduler_key=folder / "scheduler.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
    )
    _check_pair(certs.ca, certs.scheduler_cert, certs.scheduler_key, "--cluster-certs")
    _check_pair(certs.ca, certs.client_cert, certs.client_key, "--cluster-certs")
    return certs


def worker_certs(folder: Path) -> WorkerCerts:
    certs = WorkerCerts(ca=folder / CA_CERT, cert=folder / "worker.crt", key=folder / "worker.key")
    _check_pair(certs.ca, certs.cert, certs.key, "--certs")
    return certs


def _check_pair(ca_path: Path, cert_path: Path, key_path: Path, option: str) -> None:
    """Fail at start, naming the file, rather than in a TLS handshake later."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    def read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{option}: cannot read {path}: {exc.strerror or exc}",
                hint="toolrun cluster certs OUT_DIR makes the files this folder needs",
            ) from None

    try:
        ca = x509.load_pem_x509_certificate(read(ca_path))
        cert = x509.load_pem_x509_certificate(read(cert_path))
        key = serialization.load_pem_private_key(read(key_path), password=None)
    except ValueError as exc:
        raise ConfigError(f"{option}: {cert_path.parent}: a file is not PEM: {exc}") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):  # another issuer, or a forged signature
        raise ConfigError(f"{option}: {cert_path} is not signed by {ca_path}") from None
    if cert.public_key() != key.public_key():
        raise ConfigError(f"{option}: {key_path} is not the key of {cert_path}")
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ConfigError(
            f"{option}: {cert_path} is valid from {cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d}, not now",
            hint="toolrun cluster certs OUT_DIR --worker NAME signs a new one",
        )


# -- making them ------------------------------------------------------------------------------


@record(frozen=True)
class Made:
    ca_created: bool
    written: list[Path]


def make_certs(out: Path, *, workers: list[str], hosts: list[str], days: int) -> Made:
    """A CA in ``out`` (kept when there is one), the daemon's folder when it is missing, and
    a folder for each worker named (never overwritten: a machine's certificate is revoked by
    a new CA, not replaced under it)."""
    for name in workers:
        if not is_tool_name(name):
            raise UsageError(f"--worker {name!r}: letters, digits, '.', '_' or '-'")
    if len(set(workers)) != len(workers):
        raise UsageError("--worker: a name is given twice")
    if not 1 <= days <= CA_DAYS:
        raise UsageError(f"--days must be from 1 to {CA_DAYS}, not {days}")
    taken = [name for name in workers if (out / WORKERS_DIR / name).exists()]
    if taken:
        raise UsageError(
            f"{out / WORKERS_DIR / taken[0]} exists already; a worker's certificate is not "
            "replaced (make a new CA in an empty folder to revoke the old ones)"
        )
    written: list[Path] = []
    ca_created = not (out / CA_CERT).exists()
    if ca_created:
        if (out / CA_KEY).exists():
            raise UsageError(f"{out / CA_KEY} exists without {CA_CERT}: use an empty folder")
        ca_key = _new_key()
        ca = _ca_certificate(ca_key)
        written += _write_pair(out, "ca", ca, ca_key)
    else:
        ca, ca_key = _load_ca(out)
    daemon_dir = out / DAEMON_DIR
    if ca_created or not daemon_dir.exists():
        names = ["localhost", *hosts]
        written.append(_write_ca(daemon_dir, ca))
        written += _leaf(daemon_dir, "scheduler", "toolrun scheduler", names, ca, ca_key, days)
        written += _leaf(daemon_dir, "client", "toolrun daemon", [], ca, ca_key, days)
    for name in workers:
        folder = out / WORKERS_DIR / name
        written.append(_write_ca(folder, ca))
        written += _leaf(folder, "worker", name, [name, *hosts], ca, ca_key, days)
    return Made(ca_created, written)


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _ca_certificate(key: EllipticCurvePrivateKey) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolrun cluster CA")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks a little apart
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    folder: Path,
    stem: str,
    common_name: str,
    names: list[str],
    ca: x509.Certificate,
    ca_key: EllipticCurvePrivateKey,
    days: int,
) -> list[Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    # Every member both listens and connects (workers talk to each other), so each
    # certificate serves both ends of a connection.
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    alternatives = _alternative_names(names)
    if alternatives:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    return _write_pair(folder, stem, builder.sign(ca_key, hashes.SHA256()), key)


def _alternative_names(names: list[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    found: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            found.append(x509.DNSName(name))
    return found


def _load_ca(out: Path) -> tuple[x509.Certificate, EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ca = x509.load_pem_x509_certificate((out / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((out / CA_KEY).read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(
            f"{out}: has {CA_CERT} but cannot read {CA_KEY} ({exc.strerror or exc}): new "
            "workers are signed with the CA's key"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{out}: {CA_CERT} or {CA_KEY} is not PEM: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != ca.public_key():
        raise ConfigError(f"{out / CA_KEY} is not the key of {out / CA_CERT}")
    return ca, key


def _write_ca(folder: Path, ca: x509.Certificate) -> Path:
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CA_CERT
    path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return path


def _write_pair(
    folder: Path, stem: str, cert: x509.Certificate, key: EllipticCurvePrivateKey
) -> list[Path]:
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Readable by its owner only from the first byte (Windows keeps the folder's ACL).
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return [cert_path, key_path]

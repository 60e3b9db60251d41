"""The small certificate authority the cloud keeps for its uplink broker: it issues each gateway a
client certificate whose common name is the gateway's MQTT username (`F001.gw-1`), so that the
broker, with `require_certificate true` and `use_identity_as_username true`, applies the same
per-facility ACL as for a password (deploy/mosquitto-tls.conf); it revokes them into a CRL the
broker reads (`crlfile`, re-read when the broker is restarted or sent SIGHUP); and it can issue
the broker's own server certificate.

The CA's key is a file created 0600 in `ca_dir` (keep it off the broker's machine); issued and
revoked certificates are recorded in the `gateway_certificates` table."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import Column, String, Table, select, update
from sqlalchemy.engine import Connection

from cloud.store.db import UTCDateTime, metadata

CA_DAYS = 3650
LEAF_DAYS = 825
CRL_DAYS = 30

gateway_certificates = Table(
    "gateway_certificates", metadata,
    Column("serial", String(40), primary_key=True, doc="hex"),
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("facility", String(32), nullable=False),
    Column("common_name", String(100), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)


@dataclass
class IssuedCertificate:
    serial: str
    common_name: str
    not_after: datetime
    certificate_pem: str
    private_key_pem: str
    ca_pem: str


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class GatewayCA:
    """The CA in `ca_dir` (ca.key, ca.pem, crl.pem), created on first use."""

    def __init__(self, ca_dir: str | Path, *, name: str = "CareGuard gateway CA"):
        self.dir = Path(ca_dir)
        self.key_path, self.cert_path, self.crl_path = self.dir / "ca.key", self.dir / "ca.pem", self.dir / "crl.pem"
        if not self.key_path.exists():
            self._create(name)
        self.key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        self.cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def _create(self, name: str) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now().astimezone()
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        _write_private(self.key_path, _key_pem(key).encode())
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_pem(self) -> str:
        return self.cert_path.read_text()

    def _leaf(self, common_name: str, now: datetime, *, server_names: tuple[str, ...] = ()) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=LEAF_DAYS))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server_names
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server_names:
            sans = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert, key

    def issue_server(self, names: tuple[str, ...], now: datetime) -> IssuedCertificate:
        """The broker's (or the API's) server certificate for host names and addresses `names`."""
        cert, key = self._leaf(names[0], now, server_names=names)
        return IssuedCertificate(format(cert.serial_number, "x"), names[0], cert.not_valid_after_utc,
                                 cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key), self.ca_pem)

    def issue_service(self, common_name: str, now: datetime) -> IssuedCertificate:
        """A client certificate for one of the cloud's own connections (ingest, downlink): not a
        gateway's, so not recorded; revoke it by issuing the broker a new CA."""
        cert, key = self._leaf(common_name, now)
        return IssuedCertificate(format(cert.serial_number, "x"), common_name, cert.not_valid_after_utc,
                                 cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key), self.ca_pem)

    def issue_gateway(self, conn: Connection, *, gateway_id: str, facility: str, common_name: str,
                      now: datetime) -> IssuedCertificate:
        """A client certificate for the gateway (CN = its MQTT username), recorded; the private key
        is returned once and kept nowhere."""
        cert, key = self._leaf(common_name, now)
        serial = format(cert.serial_number, "x")
        conn.execute(gateway_certificates.insert().values(serial=serial, gateway_id=gateway_id, facility=facility,
                                                          common_name=common_name, issued_at=now,
                                                          not_after=cert.not_valid_after_utc))
        return IssuedCertificate(serial, common_name, cert.not_valid_after_utc,
                                 cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key), self.ca_pem)

    def revoke_gateway(self, conn: Connection, gateway_id: str, now: datetime) -> list[str]:
        """Revoke every live certificate of the gateway and write the CRL again; returns their serials."""
        g = gateway_certificates.c
        serials = list(conn.execute(select(g.serial).where(g.gateway_id == gateway_id, g.revoked_at.is_(None)))
                       .scalars())
        conn.execute(update(gateway_certificates).where(g.serial.in_(serials)).values(revoked_at=now))
        self.write_crl(conn, now)
        return serials

    def write_crl(self, conn: Connection, now: datetime) -> Path:
        """crl.pem listing every revoked certificate not yet expired; written whole, then renamed."""
        g = gateway_certificates.c
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now - timedelta(minutes=5)).next_update(now + timedelta(days=CRL_DAYS)))
        for serial, revoked_at in conn.execute(select(g.serial, g.revoked_at)
                                               .where(g.revoked_at.is_not(None), g.not_after > now)):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(revoked_at).build())
        crl = builder.sign(self.key, hashes.SHA256())
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(self.crl_path)
        return self.crl_path


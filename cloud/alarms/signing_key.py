"""The cloud's Ed25519 key for signing down commands: made at first start, kept with mode 0600.

It lives outside the data folder (CloudConfig.signing_key_path), so a copy of the database or
its backups never carries it. A key file that others may read is refused, not used: its
private half would let anyone who read it command every gateway that pins the public half."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger("careguard.cloud.signing")


class SigningKeyError(Exception):
    pass


def _read(path: Path) -> Ed25519PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(f"{path}: mode {mode:04o} lets others read the command signing key; chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The key at `path`, made there (mode 0600, its folder 0700 when new) if there is none."""
    if path.exists():
        return _read(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # Written to a private temporary name, then linked into place: two clouds starting at once
    # agree on one key, and no reader ever sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.warning("made a new command signing key at %s; gateways must pin its public key", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)

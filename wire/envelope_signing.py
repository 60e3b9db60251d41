"""Ed25519 signatures on envelopes (the cloud's down commands), no I/O.

The signature covers `Envelope.signed_bytes()`: version, id, facility, source, type, time,
sequence and body. Freshness, facility and replay are the receiver's checks on top
(edge/uplink/command_guard.py): a valid signature only says the cloud's key made it."""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.envelope import Envelope
from contracts.errors import ContractError

PUBLIC_KEY_HEX_LEN = 64


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key in hex: what a gateway's config pins."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_public_key(hex_text: str) -> Ed25519PublicKey:
    try:
        raw = bytes.fromhex(hex_text)
    except ValueError:
        raise ValueError("must be hex") from None
    if len(raw) != 32:
        raise ValueError(f"must be 32 bytes ({PUBLIC_KEY_HEX_LEN} hex digits), got {len(raw)} bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign(env: Envelope, key: Ed25519PrivateKey) -> Envelope:
    """A copy of `env` carrying the signature of its signed bytes."""
    sig = base64.urlsafe_b64encode(key.sign(env.signed_bytes())).rstrip(b"=").decode("ascii")
    return env.model_copy(update={"sig": sig})


def verify(env: Envelope, key: Ed25519PublicKey) -> None:
    """Raise ContractError unless `env` carries a signature by `key` over its signed bytes."""
    if env.sig is None:
        raise ContractError("unsigned")
    try:
        key.verify(base64.urlsafe_b64decode(env.sig + "=="), env.signed_bytes())
    except (InvalidSignature, ValueError):
        raise ContractError("signature does not verify with the pinned cloud key") from None

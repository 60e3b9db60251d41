"""Children's data at rest: the least is stored (a pseudonymous child id, the birth month, the
class), what identifies is encrypted with AES-GCM, and lookups go through keyed hashes so the
database never needs the plaintext to find a child.

The data key comes from CAREGUARD_DATA_KEY (32 bytes, base64 or hex) or from a key file, generated
(0600) on first use. The key file lives outside the data folder by default
(CAREGUARD_DATA_KEY_FILE, else ~/.config/careguard/data.key): a copy of the data folder or a
database backup then holds no key to its encrypted fields. Back the key file up on its own:
without it, every encrypted field (children, snapshots) is unreadable."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
import unicodedata
from pathlib import Path
from typing import Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "CAREGUARD_DATA_KEY"
KEY_FILE_ENV = "CAREGUARD_DATA_KEY_FILE"
KEY_FILE = "data.key"
KEY_BYTES = 32
NONCE_BYTES = 12
_PREFIX = "v1."

# Fields a child record may never carry: names and identity document numbers stay in the facility.
FORBIDDEN_FIELDS = frozenset({
    "name", "child_name", "full_name", "first_name", "last_name", "surname", "given_name", "parent_name",
    "guardian_name", "id_number", "id_card", "id_card_number", "identity_number", "resident_id",
    "citizen_id", "passport", "passport_number", "birth_date", "birthday", "date_of_birth", "phone", "address",
    "姓名", "名字", "身份证", "身份证号", "出生日期", "电话", "住址",
})
# GB 11643 citizen identity numbers: 18 characters (17 digits and a check digit or X), or the old 15 digits.
RESIDENT_ID_RE = re.compile(r"^(\d{17}[\dXx]|\d{15})$")


class PrivacyError(Exception):
    """A field that cannot be decrypted (wrong key, or a value moved from another row)."""


def identifying_field(data: object) -> Optional[str]:
    """The first key of `data` that names a forbidden field, else None."""
    if isinstance(data, dict):
        for key in data:
            if isinstance(key, str) and key.strip().lower() in FORBIDDEN_FIELDS:
                return key
    return None


def looks_like_resident_id(value: str) -> bool:
    return bool(RESIDENT_ID_RE.match(value))


def _parse_key(text: str) -> bytes:
    text = text.strip()
    candidates = []
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        candidates.append(bytes.fromhex(text))
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            candidates.append(decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            pass
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise ValueError(f"{KEY_ENV}: expected {KEY_BYTES} bytes as base64 or 64 hex digits")


def default_key_file() -> Path:
    """CAREGUARD_DATA_KEY_FILE, else data.key in the user's configuration folder (not the data folder)."""
    if os.environ.get(KEY_FILE_ENV):
        return Path(os.environ[KEY_FILE_ENV])
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "careguard" / KEY_FILE


def load_data_key(key_file: Optional[Path]) -> bytes:
    """The key from the environment, else from `key_file`, generated there (0600) on first use."""
    env = os.environ.get(KEY_ENV)
    if env:
        return _parse_key(env)
    if key_file is None:
        raise RuntimeError(f"no data key: set {KEY_ENV} (32 bytes, base64) or give a key file")
    path = Path(key_file)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _parse_key(path.read_text())
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
    return _parse_key(path.read_text())


class FieldCipher:
    """AES-256-GCM for fields, with the row's identity as associated data, so a ciphertext copied
    into another row does not decrypt; HMAC-SHA256 references for lookups. Both keys are derived
    from the one data key, so neither use weakens the other."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise ValueError(f"data key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(hmac.new(key, b"careguard field encryption", hashlib.sha256).digest())
        self._mac_key = hmac.new(key, b"careguard lookup reference", hashlib.sha256).digest()

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, token: str, context: str) -> str:
        if not token.startswith(_PREFIX):
            raise PrivacyError("not a value this cipher wrote")
        body = token[len(_PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise PrivacyError(f"cannot decrypt a field of {context}: wrong key or moved value") from None

    def encrypt_bytes(self, plaintext: bytes, context: str) -> bytes:
        """Media (clips, pictures) at rest: nonce + AES-GCM ciphertext, bound to `context`."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt_bytes(self, sealed: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except (ValueError, InvalidTag):
            raise PrivacyError(f"cannot decrypt {context}: wrong key or moved value") from None

    def reference(self, *parts: str) -> str:
        """A stable keyed hash of `parts`: equal inputs give equal references, nothing reverses it."""
        msg = "\x1f".join(unicodedata.normalize("NFKC", p).strip().casefold() for p in parts)
        return hmac.new(self._mac_key, msg.encode(), hashlib.sha256).hexdigest()


_lock = threading.Lock()


def app_cipher(app) -> FieldCipher:
    """The application's cipher: `app.state.data_cipher` when the caller set one, else made once
    from the environment or the key file (`app.state.data_key_file`, else the default one)."""
    cipher = getattr(app.state, "data_cipher", None)
    if cipher is None:
        with _lock:
            cipher = getattr(app.state, "data_cipher", None)
            if cipher is None:
                key_file = getattr(app.state, "data_key_file", None) or default_key_file()
                cipher = FieldCipher(load_data_key(Path(key_file)))
                app.state.data_cipher = cipher
    return cipher

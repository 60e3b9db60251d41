"""Children's data at rest: the least is stored (a pseudonymous child id, the birth month, the
class), what identifies is encrypted with AES-GCM, and lookups go through keyed hashes so the
database never needs the plaintext to find a child.

The data key comes from CAREGUARD_DATA_KEY (32 bytes, base64 or hex) or, for the embedded SQLite
cloud, from a key file generated beside the database (the var folder). A PostgreSQL cloud without
the variable refuses to start its care routes: a key that lives in no file anyone backs up would
make every encrypted field unreadable after a restart."""

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
from sqlalchemy.engine import Engine, make_url

KEY_ENV = "CAREGUARD_DATA_KEY"
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


def load_data_key(var_dir: Optional[Path]) -> bytes:
    """The key from the environment, else from `var_dir`/data.key, generated there on first use."""
    env = os.environ.get(KEY_ENV)
    if env:
        return _parse_key(env)
    if var_dir is None:
        raise RuntimeError(f"no data key: set {KEY_ENV} (32 bytes, base64) for a cloud whose store is not a SQLite file")
    path = Path(var_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
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


def key_dir_for(engine: Engine) -> Optional[Path]:
    """The folder of a SQLite file store (the embedded var folder), else None."""
    url = make_url(str(engine.url.render_as_string(hide_password=False)))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return None


_lock = threading.Lock()


def engine_cipher(engine: Engine) -> FieldCipher:
    """A cipher from the environment's key or the key file beside a SQLite store (for processes
    without the app, such as ingest workers); raises RuntimeError when there is no key."""
    return FieldCipher(load_data_key(key_dir_for(engine)))


def app_cipher(app) -> FieldCipher:
    """The application's cipher: `app.state.data_cipher` when the caller set one, else made once
    from the environment or the key file beside the SQLite store."""
    cipher = getattr(app.state, "data_cipher", None)
    if cipher is None:
        with _lock:
            cipher = getattr(app.state, "data_cipher", None)
            if cipher is None:
                cipher = engine_cipher(app.state.engine)
                app.state.data_cipher = cipher
    return cipher

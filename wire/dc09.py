"""SIA DC-09 codec: frames, NULL messages and ACK/NAK/DUH responses as bytes, no I/O (sans-IO).

Frame: <LF><crc><0LLL>"<id>"<seq>R<rcvr>L<pref>#<acct>[<data>]<xdata...><_HH:MM:SS,MM-DD-YYYY><CR>
- crc: CRC-16/ARC of everything from the first `"` to the end of the timestamp, 4 upper hex digits;
  0LLL: the length of that same span, 4 hex digits.
- Encrypted (`"*SIA-DCS"`, `"*ADM-CID"`, `"*NULL"`): after `[` comes the hex of
  AES-CBC(zero IV)(pad + "|" + data + "]" + xdata + timestamp); pad makes the region a multiple of 16.
- SIA-DCS data: `#acct|Nri<area>/<CODE><zone:03>`; ADM-CID data: `#acct|<Q><EEE> <PP> <ZZZ>`.
- CareGuard's alarm id travels as extended data `[I<uuid>]` (alarm text). SIA-DCS also carries the
  time of origin as `[H_HH:MM:SS,MM-DD-YYYY]`; ADM-CID does not, because pysiaalarm (and receivers
  built like it) accept a single extended-data block after Contact ID data.

Replies, as CareGuard's receiver gives them (DC-09 leaves some of this open):
- ACK: accepted (also for NULL); `"*ACK"` with an encrypted timestamp when the frame was encrypted.
- NAK `"NAK"0000R0L0A0[]_<receiver time>`: an authenticated frame whose timestamp is missing or
  outside the window; the sender corrects its clock from the timestamp and resends.
- DUH: authenticated but its data not understood (format).
- No reply at all: bad framing, length or CRC, an unsupported id token, an unknown account, a wrong
  key or undecryptable content. One shape for all of these, so a reply never tells an
  unauthenticated sender whether an account exists (DC-09 allows a receiver to stay silent).

The checks are split so a receiver can run the cheap ones first: `read_header` (framing, length,
header; no CRC), then the account lookup, then `check_crc`, then `open_frame` (AES, content).
`check_reply` is the sender's side of the same care: which replies prove the frame was received.

Time is always passed in (`now`); every datetime is timezone-aware and sent as UTC.
"""

from __future__ import annotations

import re
import secrets
import threading
from functools import lru_cache
from datetime import datetime, timezone
from typing import Annotated, Literal, Mapping, NamedTuple, Optional
from uuid import UUID

import fastcrc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import AfterValidator

from contracts.alarms import AlarmKind
from contracts.dc09_codes import CID_CODES, SIA_CODES
from contracts.errors import ContractError

SIA_DCS = "SIA-DCS"
ADM_CID = "ADM-CID"
NULL = "NULL"
Protocol = Literal["SIA-DCS", "ADM-CID"]
TOKENS = (SIA_DCS, ADM_CID, NULL)

SEQ_MAX = 9999
# DC-09: a receiver accepts a timestamp from 40 s behind to 20 s ahead of its own clock.
WINDOW_BEHIND_S = 40
WINDOW_AHEAD_S = 20
# A DC-09 timestamp has whole seconds: a receiver's time read just after the frame's can print a
# second earlier than the frame's (truncated) time.
TIMESTAMP_RESOLUTION_S = 1

_TS_FMT = "%H:%M:%S,%m-%d-%Y"
_TS_RE = r"_\d{2}:\d{2}:\d{2},\d{2}-\d{2}-\d{4}"
_ZERO_IV = bytes(16)
_TS_PARTS_RE = re.compile(r"_?(\d{2}):(\d{2}):(\d{2}),(\d{2})-(\d{2})-(\d{4})\Z")

_HEADER_RE = re.compile(
    r'"(?P<star>\*)?(?P<token>[^"]{1,16})"(?P<seq>\d{4})(?:R(?P<rcvr>[0-9A-Fa-f]{1,6}))?'
    r"L(?P<pref>[0-9A-Fa-f]{1,6})#(?P<acct>[0-9A-Fa-f]{3,16})\[(?P<rest>.*)\Z", re.S)
_PLAIN_REST_RE = re.compile(r"(?P<data>[^\[\]]*)\](?P<xdata>(?:\[[^\[\]]*\])*)(?P<ts>" + _TS_RE + r")?\Z", re.S)
# SIA DC-03 data: "N", then the optional time ("ti" hh:mm), user ("id") and area ("ri") fields a
# panel may send, each closed by "/", then one event code and its zone, then optional ^text^.
_SIA_DATA_RE = re.compile(
    r"(?:#(?P<acct>[0-9A-Fa-f]{3,16}))?\|?N(?:ti\d{2}:\d{2}/?)?(?:id\d{1,4}/?)?(?:ri(?P<area>\d{1,4})/?)?"
    r"(?P<code>[A-Z]{2})(?P<zone>\d{1,4})?(?:\^[^^]*\^)?\Z")
_CID_DATA_RE = re.compile(
    r"(?:#(?P<acct>[0-9A-Fa-f]{3,16}))?\|?(?P<code>[136][0-9A-Fa-f]{3}) (?P<area>\d{2}) (?P<zone>\d{3})\Z")
_RESPONSE_RE = re.compile(
    r'"(?P<star>\*)?(?P<token>ACK|NAK|DUH|RSP)"(?P<seq>\d{4})(?P<route>[^#\[]*)(?:#(?P<acct>[0-9A-Fa-f]{3,16}))?'
    r"\[(?P<rest>.*)\Z", re.S)


def _valid_key_hex(v: str) -> str:
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise ValueError("must be hex") from None
    if len(raw) not in (16, 24, 32):
        raise ValueError(f"must be 16, 24 or 32 bytes (32, 48 or 64 hex digits), got {len(raw)} bytes")
    return v


# An AES key as configuration writes it, checked where it is read (gateway and receiver alike).
AesKeyHex = Annotated[str, AfterValidator(_valid_key_hex)]


class DC09Error(ContractError):
    """A frame or response that fails DC-09.

    `kind` is a short counter key (crc, length, framing, format, account, timestamp, decrypt, token,
    code); `header` carries what could be read of the frame, so a receiver can still address a NAK/DUH."""

    def __init__(self, kind: str, reason: str, header: Optional["Header"] = None):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.header = header


# The records below are named tuples, not frozen dataclasses: a receiver builds three of them for
# each frame of a burst, and a frozen dataclass's __init__ costs several times a tuple's.
class EventData(NamedTuple):
    """One event as DC-09 carries it.

    `code` is the SIA two-letter code (SIA-DCS) or qualifier+event code such as "1120" (ADM-CID)."""

    code: str
    zone: int
    area: int = 1
    alarm_id: Optional[UUID] = None
    occurred_at: Optional[datetime] = None


class Header(NamedTuple):
    token: str
    encrypted: bool
    seq: int
    receiver: Optional[str]
    prefix: str
    account: str


class Frame(NamedTuple):
    """A decoded frame; `event` is None for NULL messages."""

    header: Header
    timestamp: Optional[datetime]
    event: Optional[EventData]
    data: str = ""  # data + extended data as sent, without timestamp: the content a resend repeats


class Response(NamedTuple):
    kind: Literal["ACK", "NAK", "DUH", "RSP"]
    seq: int
    account: Optional[str]
    timestamp: Optional[datetime]  # the receiver's clock (always on NAK; inside the encryption on "*ACK")
    encrypted: bool = False


# ------------------------------------------------------------------ primitives
def crc16(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0), as DC-09 specifies.

    Compiled (fastcrc): a receiver checks the CRC of every frame, including a flood of bad
    ones; on a 4 KB frame it costs about 0.2 us against 2 ms bit by bit in Python."""
    return fastcrc.crc16.arc(data)


def next_seq(seq: int) -> int:
    """Sequence numbers run 0001..9999 and wrap to 0001 (0000 is reserved for NAK)."""
    return 1 if seq >= SEQ_MAX else seq + 1


def format_timestamp(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return _format_second(int(ts.timestamp()))


@lru_cache(maxsize=64)
def _format_second(epoch_s: int) -> str:
    # A receiver stamps every reply of the same second with the same text: strftime once a second.
    return "_" + datetime.fromtimestamp(epoch_s, timezone.utc).strftime(_TS_FMT)


@lru_cache(maxsize=256)
def parse_timestamp(text: str) -> datetime:
    # By hand rather than strptime, which costs a receiver more than the AES of a frame; cached
    # because a burst's frames carry the same few seconds (a datetime is immutable, so sharing is safe).
    m = _TS_PARTS_RE.match(text)
    try:
        if m is None:
            raise ValueError
        hh, mi, ss, mo, dd, yyyy = map(int, m.groups())
        return datetime(yyyy, mo, dd, hh, mi, ss, tzinfo=timezone.utc)
    except ValueError:
        raise DC09Error("timestamp", f"not a valid _HH:MM:SS,MM-DD-YYYY time: {text!r}") from None


def check_timestamp(frame: Frame, now: datetime) -> None:
    """Raise if the frame has no timestamp or its time is outside the receiver's window (-40 s/+20 s).

    DC-09 lets an unencrypted frame go without a timestamp; CareGuard does not, because a plain
    frame without one could be replayed forever."""
    if frame.timestamp is None:
        raise DC09Error("timestamp", f"{'encrypted' if frame.header.encrypted else 'plain'} frame without timestamp",
                        frame.header)
    skew = (frame.timestamp - now).total_seconds()
    if skew > WINDOW_AHEAD_S or skew < -WINDOW_BEHIND_S:
        raise DC09Error("timestamp", f"frame time {frame.timestamp.isoformat()} is {skew:+.0f} s from receiver time "
                        f"(window -{WINDOW_BEHIND_S}/+{WINDOW_AHEAD_S} s)", frame.header)


def _check_key(key: bytes) -> None:
    if len(key) not in (16, 24, 32):
        raise ValueError(f"AES key must be 16, 24 or 32 bytes, got {len(key)}")


@lru_cache(maxsize=4096)
def _cipher(key: bytes) -> Cipher:
    # Building the AES key schedule and the Cipher object costs several times the AES of a frame; a
    # receiver decrypts and encrypts with the same few thousand keys all day. The cache holds one
    # per key (bounded), each call still gets a fresh encryptor/decryptor (CBC from the zero IV).
    return Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV))


class _PadSource:
    """Random hex digits for pads (never one of | [ ]), read from the OS's CSPRNG a page at a time
    rather than with one system call per frame."""

    def __init__(self, chunk: int = 4096):
        self._chunk = chunk
        self._hex = ""
        self._at = 0  # digits before this are used (never cut off the string: that copies the rest each time)
        self._lock = threading.Lock()  # the edge's link and a receiver may encrypt from several threads

    def take(self, n: int) -> str:
        with self._lock:
            if len(self._hex) - self._at < n:
                self._hex, self._at = secrets.token_hex(self._chunk), 0
            start = self._at
            self._at = start + n
            return self._hex[start:start + n]


_pads = _PadSource()


def _encrypt(key: bytes, plain: str) -> str:
    padded = _pads.take(16 - (len(plain) + 1) % 16) + "|" + plain
    enc = _cipher(key).encryptor()
    return (enc.update(padded.encode("ascii")) + enc.finalize()).hex().upper()


def _decrypt(key: bytes, hex_text: str, header: Optional[Header]) -> str:
    """The plaintext after the pad and its `|` terminator."""
    try:
        raw = bytes.fromhex(hex_text)
    except ValueError:
        raise DC09Error("decrypt", "encrypted part is not hex", header) from None
    if not raw or len(raw) % 16:
        raise DC09Error("decrypt", f"encrypted part is {len(raw)} bytes, not a multiple of 16", header)
    dec = _cipher(key).decryptor()
    plain = (dec.update(raw) + dec.finalize()).decode("latin-1")
    if "|" not in plain:
        raise DC09Error("decrypt", "no pad terminator after decryption (wrong key?)", header)
    return plain.split("|", 1)[1]


def _wrap(body: str) -> bytes:
    raw = body.encode("ascii")
    if len(raw) > 0xFFF:
        raise ValueError(f"frame body is {len(raw)} bytes, DC-09 allows at most 4095")
    return b"\n" + f"{crc16(raw):04X}{len(raw):04X}".encode() + raw + b"\r"


def _unwrap(frame: bytes) -> str:
    """Check LF/CR and length (not the CRC: see check_crc); return the body from the first `"`."""
    if not frame.startswith(b"\n") or not frame.endswith(b"\r"):
        raise DC09Error("framing", "frame must start with LF and end with CR")
    inner = frame[1:-1]
    if len(inner) < 9:
        raise DC09Error("framing", f"frame of {len(frame)} bytes is truncated")
    head, body = inner[:8], inner[8:]
    try:
        crc_text, len_text = head[:4].decode("ascii"), head[4:].decode("ascii")
        int(crc_text, 16)  # checked against the body by check_crc; here only its form
        sent_len = int(len_text, 16)
    except (UnicodeDecodeError, ValueError):
        raise DC09Error("framing", f"CRC/length field {head!r} is not hex") from None
    if not len_text.startswith("0"):
        raise DC09Error("length", f"length field {len_text!r} must start with 0")
    if not body.startswith(b'"'):
        raise DC09Error("framing", 'id token does not follow CRC and length (no ")')
    if sent_len != len(body):
        raise DC09Error("length", f"length field says {sent_len}, frame body is {len(body)} bytes")
    return body.decode("latin-1")


def check_crc(frame: bytes) -> None:
    """Raise unless the CRC field matches the body. Call after the framing checks of read_header."""
    body = frame[9:-1]
    computed = crc16(body)
    try:
        sent = int(frame[1:5], 16)
    except ValueError:
        raise DC09Error("framing", f"CRC field {frame[1:5]!r} is not hex") from None
    if sent != computed:
        raise DC09Error("crc", f"CRC {sent:04X} does not match computed {computed:04X}")


# ------------------------------------------------------------------ sender side
def _route(seq: int, receiver: Optional[str], prefix: str, account: str) -> str:
    if not 1 <= seq <= SEQ_MAX:
        raise ValueError(f"sequence {seq} outside 1..{SEQ_MAX}")
    if not re.fullmatch(r"[0-9A-Fa-f]{3,16}", account):
        raise ValueError(f"account {account!r} must be 3-16 hex digits")
    rcvr = f"R{receiver}" if receiver else ""
    return f"{seq:04d}{rcvr}L{prefix}#{account.upper()}["


def _event_data(protocol: str, account: str, ev: EventData) -> str:
    if not 0 <= ev.zone <= 999:
        raise ValueError(f"zone {ev.zone} outside 0..999")
    acct = account.upper()
    if protocol == SIA_DCS:
        if not re.fullmatch(r"[A-Z]{2}", ev.code):
            raise ValueError(f"SIA-DCS code {ev.code!r} must be two capital letters")
        data = f"#{acct}|Nri{ev.area}/{ev.code}{ev.zone:03d}]"
        if ev.occurred_at is not None:
            data += f"[H{format_timestamp(ev.occurred_at)}]"
    elif protocol == ADM_CID:
        if not re.fullmatch(r"[136][0-9A-F]{3}", ev.code):
            raise ValueError(f"ADM-CID code {ev.code!r} must be qualifier 1/3/6 and 3 hex digits")
        if not 0 <= ev.area <= 99:
            raise ValueError(f"ADM-CID partition {ev.area} outside 0..99")
        data = f"#{acct}|{ev.code} {ev.area:02d} {ev.zone:03d}]"
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    if ev.alarm_id is not None:
        data += f"[I{ev.alarm_id}]"
    return data


def _frame(token: str, seq: int, account: str, data: str, now: datetime, receiver: Optional[str],
           prefix: str, key: Optional[bytes]) -> bytes:
    route = _route(seq, receiver, prefix, account)
    tail = data + format_timestamp(now)
    if key is None:
        return _wrap(f'"{token}"{route}{tail}')
    _check_key(key)
    return _wrap(f'"*{token}"{route}{_encrypt(key, tail)}')


def encode_event(event: EventData, *, protocol: Protocol, account: str, seq: int, now: datetime,
                 receiver: Optional[str] = None, prefix: str = "0", key: Optional[bytes] = None) -> bytes:
    """One event frame, timestamped `now` (the sender's corrected clock)."""
    return _frame(protocol, seq, account, _event_data(protocol, account, event), now, receiver, prefix, key)


def encode_null(*, account: str, seq: int, now: datetime, receiver: Optional[str] = None, prefix: str = "0",
                key: Optional[bytes] = None) -> bytes:
    """A NULL (link supervision) frame."""
    return _frame(NULL, seq, account, "]", now, receiver, prefix, key)


def decode_response(frame: bytes, *, key: Optional[bytes] = None) -> Response:
    """Parse a receiver's reply. An encrypted ACK is decrypted to read its timestamp (and to check the
    receiver holds the key); whether the reply is one the sender may accept is check_reply's call."""
    body = _unwrap(frame)
    check_crc(frame)
    m = _RESPONSE_RE.match(body)
    if not m:
        raise DC09Error("format", f"not an ACK/NAK/DUH response: {body[:60]!r}")
    kind, rest = m["token"], m["rest"]
    timestamp = None
    if m["star"]:
        if key is None:
            raise DC09Error("decrypt", f"encrypted {kind} but no key configured")
        plain = _decrypt_response(key, rest)
        ts = re.search(_TS_RE + r"\Z", plain)
        if "]" not in plain or ts is None:
            raise DC09Error("decrypt", f"encrypted {kind} does not decrypt to ]<timestamp> (wrong key?)")
        timestamp = parse_timestamp(ts.group(0))
    else:
        ts = re.search(_TS_RE + r"\Z", rest)
        if ts:
            timestamp = parse_timestamp(ts.group(0))
    if kind == "NAK" and timestamp is None:
        raise DC09Error("timestamp", "NAK without receiver timestamp")
    return Response(kind=kind, seq=int(m["seq"]), account=m["acct"].upper() if m["acct"] else None,
                    timestamp=timestamp, encrypted=bool(m["star"]))


def check_ack(reply: Response, *, seq: int, account: str, encrypted: bool, sent_at: datetime, now: datetime,
              tolerance_s: float) -> None:
    """Raise DC09Error("reply") unless `reply` is an ACK that proves the frame sent at `sent_at` was received.

    `sent_at` (the frame's timestamp) and `now` are on the sender's clock as corrected to the
    receiver's by NAKs. The sequence number and account travel in clear text and prove nothing on
    their own; on an encrypted path the ACK's encrypted timestamp is what an on-path attacker cannot
    forge, so it must be no older than the frame (less the 1 s resolution and `tolerance_s`, the
    clock error allowed between receiver and corrected sender) and not ahead of `now` by more than
    the DC-09 window. A replayed ACK from an earlier exchange fails the first test."""
    if reply.kind != "ACK":
        raise DC09Error("reply", f"receiver answered {reply.kind}")
    if reply.seq != seq:
        raise DC09Error("reply", f"ACK for sequence {reply.seq:04d}, frame was {seq:04d}")
    if reply.account != account.upper():
        raise DC09Error("reply", f"ACK for account {reply.account}, frame was from {account.upper()}")
    if not encrypted:
        return
    if not reply.encrypted or reply.timestamp is None:
        raise DC09Error("reply", "plain ACK on an encrypted path")
    age = (sent_at - reply.timestamp).total_seconds()
    if age > TIMESTAMP_RESOLUTION_S + tolerance_s:
        raise DC09Error("reply", f"ACK timestamp {reply.timestamp.isoformat()} is {age:.0f} s older than the frame "
                        f"(allowed {TIMESTAMP_RESOLUTION_S + tolerance_s:g} s): a replayed ACK")
    ahead = (reply.timestamp - now).total_seconds()
    if ahead > WINDOW_AHEAD_S:
        raise DC09Error("reply", f"ACK timestamp {reply.timestamp.isoformat()} is {ahead:.0f} s ahead of the "
                        f"receiver's clock as corrected (window +{WINDOW_AHEAD_S} s)")


def _decrypt_response(key: bytes, rest: str) -> str:
    # A receiver may put a clear response qualifier before the hex (pysiaalarm does), so decrypt the
    # longest hex tail that is a whole number of blocks.
    hex_tail = re.search(r"[0-9A-Fa-f]*\Z", rest).group(0)
    hex_tail = hex_tail[len(hex_tail) % 32:]
    try:
        raw = bytes.fromhex(hex_tail)
    except ValueError:
        raise DC09Error("decrypt", "encrypted response is not hex") from None
    if not raw:
        raise DC09Error("decrypt", "encrypted response carries no ciphertext")
    dec = _cipher(key).decryptor()
    return (dec.update(raw) + dec.finalize()).decode("latin-1")


# ------------------------------------------------------------------ receiver side
def read_header(frame: bytes) -> tuple[Header, str]:
    """The cheap checks: framing, length and a header with a supported id token (no CRC, no AES).
    Returns the header and the still encrypted or plain rest."""
    body = _unwrap(frame)
    m = _HEADER_RE.match(body)
    if not m:
        raise DC09Error("format", f"header is not \"id\"seq[Rrcvr]Lpref#acct[ : {body[:60]!r}")
    header = Header(token=m["token"], encrypted=bool(m["star"]), seq=int(m["seq"]),
                    receiver=m["rcvr"].upper() if m["rcvr"] else None, prefix=m["pref"].upper(),
                    account=m["acct"].upper())
    if header.token not in TOKENS:
        raise DC09Error("token", f"unsupported id token {header.token!r}", header)
    return header, m["rest"]


def decode_frame(frame: bytes, accounts: Mapping[str, Optional[bytes]]) -> Frame:
    """Decode an event or NULL frame for a receiver, cheap checks first.

    `accounts` maps each known account (upper-case hex) to its AES key, or None for plain text."""
    header, rest = read_header(frame)
    if header.account not in accounts:
        raise DC09Error("account", f"unknown account {header.account}", header)
    check_crc(frame)
    return open_frame(header, rest, accounts[header.account])


def open_frame(header: Header, rest: str, key: Optional[bytes]) -> Frame:
    """Decrypt (or check that a plain frame may be plain) and parse the content of a frame whose
    header, account and CRC were checked. A "decrypt" error means the frame is not authenticated;
    any other error comes from content the account's key did open."""
    if header.encrypted:
        if key is None:
            raise DC09Error("decrypt", f"account {header.account} has no key but the frame is encrypted", header)
        rest = _decrypt(key, rest, header)
    elif key is not None:
        raise DC09Error("decrypt", f"account {header.account} requires encryption, frame is plain", header)
    m = _PLAIN_REST_RE.match(rest)
    if not m:
        kind = "decrypt" if header.encrypted else "format"
        raise DC09Error(kind, f"data is not <data>][xdata]..[_timestamp]: {rest[:60]!r}", header)
    timestamp = parse_timestamp(m["ts"]) if m["ts"] else None
    xdata = dict((blk[0], blk[1:]) for blk in re.findall(r"\[([^\[\]]+)\]", m["xdata"]))
    content = m["data"] + "]" + m["xdata"]
    if header.token == NULL:
        return Frame(header=header, timestamp=timestamp, event=None, data=content)
    return Frame(header=header, timestamp=timestamp, event=_parse_event(header, m["data"], xdata), data=content)


def _parse_event(header: Header, data: str, xdata: dict[str, str]) -> EventData:
    matcher = _SIA_DATA_RE if header.token == SIA_DCS else _CID_DATA_RE
    m = matcher.match(data)
    if not m:
        raise DC09Error("format", f"{header.token} data not understood: {data!r}", header)
    if m["acct"] and m["acct"].upper() != header.account:
        raise DC09Error("account", f"data account {m['acct']} differs from header account {header.account}", header)
    if header.token == SIA_DCS:
        area = int(m["area"]) if m["area"] else 0
        zone = int(m["zone"]) if m["zone"] else 0
        code = m["code"]
    else:
        area, zone, code = int(m["area"]), int(m["zone"]), m["code"].upper()
    alarm_id = None
    if "I" in xdata:
        try:
            alarm_id = UUID(xdata["I"])
        except ValueError:
            alarm_id = None  # free alarm text from another sender, not a CareGuard id
    occurred_at = parse_timestamp(xdata["H"]) if "H" in xdata else None
    return EventData(code=code, zone=zone, area=area, alarm_id=alarm_id, occurred_at=occurred_at)


def _reply_route(header: Optional[Header]) -> str:
    if header is None:
        return "0000R0L0#0["  # nothing readable to address
    rcvr = f"R{header.receiver}" if header.receiver else "R0"
    return f"{header.seq:04d}{rcvr}L{header.prefix}#{header.account}["


def encode_ack(header: Header, *, now: datetime, key: Optional[bytes] = None) -> bytes:
    """ACK for an accepted frame; encrypted (with our time inside) when the frame was."""
    route = _reply_route(header)
    if header.encrypted:
        if key is None:
            raise ValueError("an encrypted frame needs the account key to ACK")
        return _wrap(f'"*ACK"{route}{_encrypt(key, "]" + format_timestamp(now))}')
    return _wrap(f'"ACK"{route}]')


def encode_nak(*, now: datetime) -> bytes:
    """NAK carrying the receiver's time, so the sender can correct its clock."""
    return _wrap(f'"NAK"0000R0L0A0[]{format_timestamp(now)}')


def encode_duh(header: Optional[Header]) -> bytes:
    return _wrap(f'"DUH"{_reply_route(header)}]')


# ------------------------------------------------------------------ codes
def code_for(kind: AlarmKind, restore: bool, protocol: Protocol) -> str:
    table = SIA_CODES if protocol == SIA_DCS else CID_CODES
    try:
        return table[(kind, restore)]
    except KeyError:
        raise ValueError(f"alarm kind {kind.value!r} (restore={restore}) has no {protocol} code") from None


def kind_of(code: str) -> Optional[tuple[AlarmKind, bool]]:
    """(kind, restore) for a SIA or Contact ID code, None for codes that are no alarm kind (e.g. RP)."""
    for table in (SIA_CODES, CID_CODES):
        for key, value in table.items():
            if value == code:
                return key
    return None

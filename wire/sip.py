"""SIP messages (RFC 3261) as GB/T 28181 uses them, and digest authentication (RFC 2617 MD5,
with or without qop=auth), as bytes in and bytes out: no I/O (sans-IO).

- `parse_datagram` reads one message from a UDP datagram; `SipStream` cuts messages out of a
  TCP byte stream by their Content-Length (which TCP requires).
- A message that breaks the grammar or lacks a header every SIP message needs (Via, From, To,
  Call-ID, CSeq) raises `SipError` naming what was wrong; sizes are bounded before anything
  is decoded, so a peer cannot make the parser hold more than one message's worth.
- Compact header names (i, f, t, v, l, c, m...) are read as their long forms.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

from contracts.errors import ContractError

MAX_MESSAGE_BYTES = 65_535  # a UDP datagram's payload at most; TCP messages are held to the same
MAX_HEAD_BYTES = 16_384
MAX_HEADERS = 64
SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7: branches that start so are unique per transaction

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length", "c": "content-type",
           "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via"}
# How headers are written when this side builds them; anything else keeps the name it came with.
CANONICAL = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate", "max-forwards": "Max-Forwards",
             "content-length": "Content-Length", "content-type": "Content-Type", "user-agent": "User-Agent"}
REQUIRED = ("via", "from", "to", "call-id", "cseq")

REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 415: "Unsupported Media Type",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 488: "Not Acceptable Here",
           500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable"}

_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) (\S+) SIP/2\.0\Z")
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2}) ([^\r\n]*)\Z")
_HEADER_NAME = re.compile(rf"{_TOKEN}\Z")
_CSEQ = re.compile(rf"([0-9]{{1,10}})\s+({_TOKEN})\Z")
_AUTH_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|\Z)')
_URI = re.compile(r"(sips?):(?:([^@;?]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?((?:;[^;?]*)*)(\?.*)?\Z")
_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\s*((?:;[^;]*)*)\Z")


class SipError(ContractError):
    """A message that fails SIP; `status` is what a server answers a bad request with."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


class Headers:
    """Header fields in order, looked up by name without regard to case or compact form."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self.items: list[tuple[str, str]] = list(items)

    @staticmethod
    def key(name: str) -> str:
        low = name.lower()
        return COMPACT.get(low, low)

    def get(self, name: str) -> Optional[str]:
        k = self.key(name)
        return next((v for n, v in self.items if self.key(n) == k), None)

    def get_all(self, name: str) -> list[str]:
        k = self.key(name)
        return [v for n, v in self.items if self.key(n) == k]

    def add(self, name: str, value: str) -> None:
        self.items.append((name, value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.items.append((name, value))

    def remove(self, name: str) -> None:
        k = self.key(name)
        self.items = [(n, v) for n, v in self.items if self.key(n) != k]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self.items == other.items

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"


@dataclass
class _Message:
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("cseq") or "")

    @property
    def from_addr(self) -> "Address":
        return parse_address(self.headers.get("from") or "")

    @property
    def to_addr(self) -> "Address":
        return parse_address(self.headers.get("to") or "")

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()


@dataclass
class SipRequest(_Message):
    method: str = ""
    uri: str = ""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass
class SipResponse(_Message):
    status: int = 200
    reason: str = "OK"

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


SipMessage = Union[SipRequest, SipResponse]


def encode(msg: SipMessage) -> bytes:
    """The message's bytes, with Content-Length set from the body."""
    lines = [msg.start_line()]
    lines += [f"{n}: {v}" for n, v in msg.headers.items if Headers.key(n) != "content-length"]
    lines.append(f"Content-Length: {len(msg.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + msg.body


# --- parsing ----------------------------------------------------------------------------
def _parse_head(head: bytes) -> tuple[str, Headers]:
    if len(head) > MAX_HEAD_BYTES:
        raise SipError(f"header section over {MAX_HEAD_BYTES} bytes", 413)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError(f"header section is not UTF-8 (byte {exc.start})") from None
    lines = text.split("\r\n")
    start = lines[0]
    headers = Headers()
    for line in lines[1:]:
        if not line:
            raise SipError("empty line inside the header section")
        if line[0] in " \t":  # folded continuation of the previous header (RFC 3261 7.3.1)
            if not headers.items:
                raise SipError("continuation line before any header")
            name, value = headers.items[-1]
            headers.items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip()
        if not sep or not _HEADER_NAME.match(name):
            raise SipError(f"malformed header line {line[:40]!r}")
        if any(ord(ch) < 32 and ch != "\t" for ch in value):
            raise SipError(f"{name}: control character in value")
        headers.add(name, value.strip())
        if len(headers.items) > MAX_HEADERS:
            raise SipError(f"more than {MAX_HEADERS} headers", 413)
    return start, headers


def parse_cseq(value: str) -> tuple[int, str]:
    m = _CSEQ.match(value.strip())
    if not m:
        raise SipError("CSeq: expected '<number> <method>'")
    return int(m.group(1)), m.group(2)


def _content_length(headers: Headers) -> Optional[int]:
    values = headers.get_all("content-length")
    if not values:
        return None
    if len(set(values)) != 1 or not re.fullmatch(r"[0-9]{1,6}", values[0]):
        raise SipError(f"Content-Length: {values[0][:20]!r} is not one length")
    return int(values[0])


def _build(start: str, headers: Headers, body: bytes) -> SipMessage:
    for name in REQUIRED:
        if not headers.get(name):
            raise SipError(f"{name}: header missing")
        if name in ("call-id", "cseq") and len(headers.get_all(name)) > 1:
            raise SipError(f"{name}: header appears twice")
    _, cseq_method = parse_cseq(headers.get("cseq") or "")
    m = _REQUEST_LINE.match(start)
    if m:
        if cseq_method != m.group(1):
            raise SipError(f"CSeq: method {cseq_method!r} differs from the request's {m.group(1)!r}")
        parse_uri(m.group(2))
        return SipRequest(headers, body, method=m.group(1), uri=m.group(2))
    m = _STATUS_LINE.match(start)
    if m:
        return SipResponse(headers, body, status=int(m.group(1)), reason=m.group(2))
    raise SipError(f"start line {start[:60]!r} is neither a request nor a status line")


def parse_datagram(data: bytes) -> SipMessage:
    """One SIP message from one UDP datagram (bytes past Content-Length are discarded, RFC 3261 18.3)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipError(f"message over {MAX_MESSAGE_BYTES} bytes", 413)
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipError("no blank line ends the header section")
    start, headers = _parse_head(head)
    length = _content_length(headers)
    if length is None:
        length = len(rest)
    if length > len(rest):
        raise SipError(f"Content-Length: {length} but only {len(rest)} body bytes")
    return _build(start, headers, rest[:length])


def error_response(data: bytes, error: SipError) -> Optional[bytes]:
    """The answer to a request that failed parsing, naming why, when its head is readable enough
    to address one (Via, From, To, Call-ID, CSeq present); None when it is not."""
    head, _, _ = data[:MAX_MESSAGE_BYTES].partition(b"\r\n\r\n")
    try:
        start, headers = _parse_head(head)
    except SipError:
        return None
    m = _REQUEST_LINE.match(start)
    if not m or m.group(1) == "ACK" or any(not headers.get(name) for name in REQUIRED):
        return None
    req = SipRequest(headers, b"", method=m.group(1), uri=m.group(2))
    phrase = f"{REASONS.get(error.status, 'Bad Request')} ({error.reason})"
    return encode(build_response(req, error.status, phrase))


class SipStream:
    """Messages out of a TCP byte stream. After a SipError the stream cannot be resynchronised:
    the caller closes the connection."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[SipMessage]:
        self._buf += data
        out = []
        while True:
            # CRLF keep-alives between messages (RFC 5626 4.4.1) carry nothing.
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD_BYTES:
                    raise SipError(f"no end of headers within {MAX_HEAD_BYTES} bytes", 413)
                return out
            start, headers = _parse_head(bytes(self._buf[:end]))
            length = _content_length(headers)
            if length is None:
                raise SipError("Content-Length: header missing (required on a stream)")
            if end + 4 + length > MAX_MESSAGE_BYTES:
                raise SipError(f"message over {MAX_MESSAGE_BYTES} bytes", 413)
            if len(self._buf) < end + 4 + length:
                return out
            body = bytes(self._buf[end + 4:end + 4 + length])
            del self._buf[:end + 4 + length]
            out.append(_build(start, headers, body))


# --- addresses --------------------------------------------------------------------------
def _params(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        part = part.strip()
        if part:
            k, _, v = part.partition("=")
            out[k.strip().lower()] = v.strip()
    return out


def _format_params(params: dict[str, str]) -> str:
    return "".join(f";{k}={v}" if v else f";{k}" for k, v in params.items())


@dataclass(frozen=True)
class SipUri:
    user: Optional[str]
    host: str
    port: Optional[int] = None
    params: dict[str, str] = field(default_factory=dict)
    scheme: str = "sip"

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{user}{self.host}{port}{_format_params(self.params)}"


def parse_uri(text: str) -> SipUri:
    m = _URI.match(text.strip())
    if not m:
        raise SipError(f"URI {text[:60]!r} is not a sip: URI")
    port = int(m.group(4)) if m.group(4) else None
    if port is not None and not 0 < port < 65536:
        raise SipError(f"URI {text[:60]!r}: port out of range")
    return SipUri(m.group(2), m.group(3), port, _params(m.group(5) or ""), m.group(1))


@dataclass(frozen=True)
class Address:
    """A From, To or Contact value: a URI with its header parameters (the tag among them)."""
    uri: SipUri
    params: dict[str, str] = field(default_factory=dict)
    display: str = ""

    @property
    def tag(self) -> Optional[str]:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def parse_address(text: str) -> Address:
    text = text.strip()
    m = re.match(r'(?:"((?:[^"\\]|\\.)*)"|([^<"]*))\s*<([^>]*)>(.*)\Z', text)
    if m:
        return Address(parse_uri(m.group(3)), _params(m.group(4)), (m.group(1) or m.group(2) or "").strip())
    # addr-spec without angle brackets: its ;params are the header's (RFC 3261 20.10)
    uri, _, params = text.partition(";")
    return Address(parse_uri(uri), _params(params))


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: Optional[int]
    params: dict[str, str] = field(default_factory=dict)

    @property
    def branch(self) -> Optional[str]:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport.upper()} {self.host}{port}{_format_params(self.params)}"


def parse_via(text: str) -> Via:
    m = _VIA.match(text.split(",")[0].strip())
    if not m:
        raise SipError(f"Via: {text[:60]!r} is not a via-parm")
    return Via(m.group(1).upper(), m.group(2), int(m.group(3)) if m.group(3) else None, _params(m.group(4)))


# --- building -----------------------------------------------------------------------------
def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id() -> str:
    return secrets.token_hex(12)


def build_request(method: str, uri: str, *, via: Via, from_addr: Address, to_addr: Address, call_id: str, cseq: int,
                  contact: Optional[Address] = None, extra: Iterable[tuple[str, str]] = (), body: bytes = b"",
                  content_type: Optional[str] = None, max_forwards: int = 70) -> SipRequest:
    headers = Headers([("Via", str(via)), ("From", str(from_addr)), ("To", str(to_addr)), ("Call-ID", call_id),
                       ("CSeq", f"{cseq} {method}"), ("Max-Forwards", str(max_forwards))])
    if contact is not None:
        headers.add("Contact", str(contact))
    for name, value in extra:
        headers.add(name, value)
    if content_type:
        headers.add("Content-Type", content_type)
    return SipRequest(headers, body, method=method, uri=uri)


def build_response(req: SipRequest, status: int, reason: Optional[str] = None, *, to_tag: Optional[str] = None,
                   extra: Iterable[tuple[str, str]] = (), body: bytes = b"",
                   content_type: Optional[str] = None) -> SipResponse:
    """A response to `req` (RFC 3261 8.2.6): its Vias, From, Call-ID and CSeq, its To with our tag."""
    headers = Headers([("Via", v) for v in req.headers.get_all("via")])
    to = req.headers.get("to") or ""
    if to_tag and "tag" not in parse_address(to).params:
        to = f"{to};tag={to_tag}"
    headers.items += [("From", req.headers.get("from") or ""), ("To", to), ("Call-ID", req.call_id),
                      ("CSeq", req.headers.get("cseq") or "")]
    for name, value in extra:
        headers.add(name, value)
    if content_type:
        headers.add("Content-Type", content_type)
    # A reason phrase is one line of text: a reason quoted from a peer's bad message must not
    # smuggle header lines into our answer.
    phrase = re.sub(r"[\x00-\x1f\x7f]", " ", reason or REASONS.get(status, "Unknown"))[:200]
    return SipResponse(headers, body, status=status, reason=phrase)


# --- digest authentication (RFC 2617) -----------------------------------------------------
def _auth_params(value: str, what: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"{what}: scheme {scheme[:20]!r} is not Digest")
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _AUTH_PARAM.match(rest, pos)
        if not m or m.end() == pos:
            raise SipError(f"{what}: malformed parameter at {rest[pos:pos + 20]!r}")
        raw = m.group(2)
        out[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        pos = m.end()
    return out


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class DigestChallenge:
    realm: str
    nonce: str
    qop: tuple[str, ...] = ()
    opaque: Optional[str] = None
    algorithm: str = "MD5"

    def encode(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        parts.append(f"algorithm={self.algorithm}")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> DigestChallenge:
    p = _auth_params(value, "WWW-Authenticate")
    for key in ("realm", "nonce"):
        if key not in p:
            raise SipError(f"WWW-Authenticate: no {key}")
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise SipError(f"WWW-Authenticate: algorithm {algorithm[:20]!r} unsupported (MD5 only)")
    qop = tuple(q.strip() for q in p.get("qop", "").split(",") if q.strip())
    return DigestChallenge(p["realm"], p["nonce"], qop, p.get("opaque"), "MD5")


@dataclass(frozen=True)
class DigestCredentials:
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: Optional[str] = None
    nc: Optional[str] = None
    cnonce: Optional[str] = None
    opaque: Optional[str] = None
    algorithm: str = "MD5"

    def encode(self) -> str:
        parts = [f"username={_quote(self.username)}", f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}",
                 f"uri={_quote(self.uri)}", f"response={_quote(self.response)}", f"algorithm={self.algorithm}"]
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f"cnonce={_quote(self.cnonce or '')}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def parse_credentials(value: str) -> DigestCredentials:
    p = _auth_params(value, "Authorization")
    for key in ("username", "realm", "nonce", "uri", "response"):
        if key not in p:
            raise SipError(f"Authorization: no {key}")
    if p.get("qop") and not (p.get("nc") and p.get("cnonce")):
        raise SipError("Authorization: qop without nc and cnonce")
    return DigestCredentials(p["username"], p["realm"], p["nonce"], p["uri"], p["response"], p.get("qop"),
                             p.get("nc"), p.get("cnonce"), p.get("opaque"), p.get("algorithm", "MD5"))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(username: str, password: str, realm: str, nonce: str, method: str, uri: str,
                    qop: Optional[str] = None, nc: Optional[str] = None, cnonce: Optional[str] = None) -> str:
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def authorize(challenge: DigestChallenge, username: str, password: str, method: str, uri: str, *,
              cnonce: Optional[str] = None, nc: int = 1) -> DigestCredentials:
    """Credentials answering `challenge`: qop=auth when the challenge offers it, RFC 2069 style otherwise."""
    if challenge.qop and "auth" not in challenge.qop:
        raise SipError(f"WWW-Authenticate: qop {','.join(challenge.qop)[:40]!r} offers no 'auth'")
    qop = "auth" if challenge.qop else None
    nc_text = f"{nc:08x}" if qop else None
    cnonce = (cnonce or secrets.token_hex(8)) if qop else None
    response = digest_response(username, password, challenge.realm, challenge.nonce, method, uri, qop, nc_text, cnonce)
    return DigestCredentials(username, challenge.realm, challenge.nonce, uri, response, qop, nc_text, cnonce,
                             challenge.opaque)


def verify(creds: DigestCredentials, password: str, method: str) -> bool:
    expected = digest_response(creds.username, password, creds.realm, creds.nonce, method, creds.uri, creds.qop,
                               creds.nc, creds.cnonce)
    return hmac.compare_digest(expected, creds.response.lower())

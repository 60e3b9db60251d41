"""MANSCDP XML bodies (GB/T 28181-2016 annex A) of SIP MESSAGE requests: Keepalive and Alarm
notifies, Catalog / DeviceInfo / DeviceStatus queries and their responses. Pure: bytes in,
objects out, and back.

- Written declaring GB2312, as the standard's examples do; a body holding a character GB2312
  lacks (a name in traditional script, say) is written as UTF-8 and declared so instead.
- Read whatever the declaration says among GB2312/GBK/GB18030/UTF-8: platforms often declare
  GB2312 and send UTF-8, so UTF-8 is tried first (GB text is almost never valid UTF-8).
- Untrusted input: a DTD or entity is refused outright (defusedxml, forbid_dtd), so no entity
  expansion or external fetch can happen; sizes, ids and numbers are checked with the field
  named in the error.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Union

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from contracts.errors import ContractError

CONTENT_TYPE = "Application/MANSCDP+xml"
MAX_BODY_BYTES = 65_535
MAX_TEXT = 256  # characters in any one field
MAX_ITEMS = 1024
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
GB_ID = re.compile(r"[0-9]{20}\Z")
_DECLARED = re.compile(rb"""<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_-]{1,20})["']""")
_ACCEPTED = {"gb2312", "gbk", "gb18030", "utf-8", "utf8"}
ROOTS = ("Query", "Response", "Notify", "Control")


class ManscdpError(ContractError):
    pass


# --- messages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Keepalive:
    sn: int
    device_id: str
    status: str = "OK"


@dataclass(frozen=True)
class Query:
    """A platform's query: Catalog, DeviceInfo, DeviceStatus (others are read as well, to be refused by name)."""
    cmd: str
    sn: int
    device_id: str


@dataclass(frozen=True)
class CatalogItem:
    device_id: str
    name: str
    status: str = "ON"  # ON | OFF
    manufacturer: str = ""
    model: str = ""
    owner: str = ""
    civil_code: str = ""
    address: str = ""
    parental: int = 0
    parent_id: str = ""
    register_way: int = 1
    secrecy: int = 0


@dataclass(frozen=True)
class CatalogResponse:
    sn: int
    device_id: str
    sum_num: int
    items: tuple[CatalogItem, ...]


@dataclass(frozen=True)
class DeviceInfoResponse:
    sn: int
    device_id: str
    device_name: str
    manufacturer: str
    model: str
    firmware: str
    channel: int
    result: str = "OK"


@dataclass(frozen=True)
class DutyStatus:
    device_id: str
    duty: str  # ONDUTY | OFFDUTY | ALARM


@dataclass(frozen=True)
class DeviceStatusResponse:
    sn: int
    device_id: str
    online: bool
    status_ok: bool
    encode: bool
    record: bool
    device_time: datetime  # local time, as the device keeps it
    alarms: tuple[DutyStatus, ...] = ()
    result: str = "OK"


@dataclass(frozen=True)
class AlarmNotify:
    sn: int
    device_id: str
    priority: int  # 1 highest .. 4
    method: int  # 1 telephone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other
    time: datetime  # local time
    description: str = ""
    alarm_type: Optional[int] = None  # Info/AlarmType, meaning per method
    longitude: Optional[float] = None
    latitude: Optional[float] = None


@dataclass(frozen=True)
class Reply:
    """A Response with only a Result: the platform's answer to an Alarm notify, for one."""
    cmd: str
    sn: int
    device_id: str
    result: str = "OK"


Message = Union[Keepalive, Query, CatalogResponse, DeviceInfoResponse, DeviceStatusResponse, AlarmNotify, Reply]


# --- encoding ---------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, value) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(value)
    return el


def _onoff(v: bool, yes: str = "ON", no: str = "OFF") -> str:
    return yes if v else no


def _tree(msg: Message) -> ET.Element:
    root_tag, cmd = {Keepalive: ("Notify", "Keepalive"), AlarmNotify: ("Notify", "Alarm"),
                     CatalogResponse: ("Response", "Catalog"), DeviceInfoResponse: ("Response", "DeviceInfo"),
                     DeviceStatusResponse: ("Response", "DeviceStatus")}.get(type(msg), (None, None))
    if isinstance(msg, Query):
        root_tag, cmd = "Query", msg.cmd
    elif isinstance(msg, Reply):
        root_tag, cmd = "Response", msg.cmd
    root = ET.Element(root_tag)
    _sub(root, "CmdType", cmd)
    _sub(root, "SN", msg.sn)
    _sub(root, "DeviceID", msg.device_id)
    if isinstance(msg, Keepalive):
        _sub(root, "Status", msg.status)
    elif isinstance(msg, Reply):
        _sub(root, "Result", msg.result)
    elif isinstance(msg, CatalogResponse):
        _sub(root, "SumNum", msg.sum_num)
        dl = ET.SubElement(root, "DeviceList", Num=str(len(msg.items)))
        for it in msg.items:
            item = ET.SubElement(dl, "Item")
            for tag, value in (("DeviceID", it.device_id), ("Name", it.name), ("Manufacturer", it.manufacturer),
                               ("Model", it.model), ("Owner", it.owner), ("CivilCode", it.civil_code),
                               ("Address", it.address), ("Parental", it.parental), ("ParentID", it.parent_id),
                               ("RegisterWay", it.register_way), ("Secrecy", it.secrecy), ("Status", it.status)):
                _sub(item, tag, value)
    elif isinstance(msg, DeviceInfoResponse):
        for tag, value in (("DeviceName", msg.device_name), ("Result", msg.result), ("Manufacturer", msg.manufacturer),
                           ("Model", msg.model), ("Firmware", msg.firmware), ("Channel", msg.channel)):
            _sub(root, tag, value)
    elif isinstance(msg, DeviceStatusResponse):
        for tag, value in (("Result", msg.result), ("Online", _onoff(msg.online, "ONLINE", "OFFLINE")),
                           ("Status", _onoff(msg.status_ok, "OK", "ERROR")), ("Encode", _onoff(msg.encode)),
                           ("Record", _onoff(msg.record)), ("DeviceTime", msg.device_time.strftime(TIME_FORMAT))):
            _sub(root, tag, value)
        al = ET.SubElement(root, "Alarmstatus", Num=str(len(msg.alarms)))
        for a in msg.alarms:
            item = ET.SubElement(al, "Item")
            _sub(item, "DeviceID", a.device_id)
            _sub(item, "DutyStatus", a.duty)
    elif isinstance(msg, AlarmNotify):
        _sub(root, "AlarmPriority", msg.priority)
        _sub(root, "AlarmMethod", msg.method)
        _sub(root, "AlarmTime", msg.time.strftime(TIME_FORMAT))
        if msg.description:
            _sub(root, "AlarmDescription", msg.description)
        if msg.longitude is not None and msg.latitude is not None:
            _sub(root, "Longitude", msg.longitude)
            _sub(root, "Latitude", msg.latitude)
        if msg.alarm_type is not None:
            _sub(ET.SubElement(root, "Info"), "AlarmType", msg.alarm_type)
    return root


def encode(msg: Message) -> bytes:
    text = ET.tostring(_tree(msg), encoding="unicode")
    try:
        return b'<?xml version="1.0" encoding="GB2312"?>\r\n' + text.encode("gb2312")
    except UnicodeEncodeError:
        return b'<?xml version="1.0" encoding="UTF-8"?>\r\n' + text.encode("utf-8")


def split_catalog(sn: int, device_id: str, items: list[CatalogItem], max_body: int = 1200) -> list[CatalogResponse]:
    """The Catalog answer cut into messages of at most about `max_body` bytes (one item at
    least each), all with the query's SN and the full SumNum, as the standard asks; small
    bodies keep each MESSAGE inside one UDP datagram."""
    out: list[CatalogResponse] = []
    batch: list[CatalogItem] = []
    for item in items:
        if batch and len(encode(CatalogResponse(sn, device_id, len(items), tuple(batch + [item])))) > max_body:
            out.append(CatalogResponse(sn, device_id, len(items), tuple(batch)))
            batch = []
        batch.append(item)
    if batch or not out:
        out.append(CatalogResponse(sn, device_id, len(items), tuple(batch)))
    return out


# --- decoding ---------------------------------------------------------------------------
def _decode_text(data: bytes) -> str:
    m = _DECLARED.search(data[:200])
    if m and m.group(1).decode("ascii").lower() not in _ACCEPTED:
        raise ManscdpError(f"encoding {m.group(1).decode('ascii')!r} unsupported (GB2312, GBK, GB18030 or UTF-8)")
    for codec in ("utf-8", "gb18030"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise ManscdpError("body is neither UTF-8 nor GB18030 text")


def _text(el: ET.Element, tag: str, required: bool = True, default: str = "") -> str:
    child = el.find(tag)
    if child is None:
        if required:
            raise ManscdpError(f"{tag}: element missing")
        return default
    value = (child.text or "").strip()
    if len(value) > MAX_TEXT:
        raise ManscdpError(f"{tag}: longer than {MAX_TEXT} characters")
    return value


def _int(el: ET.Element, tag: str, lo: int, hi: int, required: bool = True, default: int = 0) -> int:
    raw = _text(el, tag, required)
    if not raw and not required:
        return default
    if not re.fullmatch(r"[0-9]{1,10}", raw) or not lo <= int(raw) <= hi:
        raise ManscdpError(f"{tag}: {raw[:20]!r} is not a number from {lo} to {hi}")
    return int(raw)


def _gb_id(el: ET.Element, tag: str = "DeviceID") -> str:
    value = _text(el, tag)
    if not GB_ID.match(value):
        raise ManscdpError(f"{tag}: {value[:24]!r} is not a 20-digit GB/T 28181 id")
    return value


def _time(el: ET.Element, tag: str) -> datetime:
    raw = _text(el, tag)
    try:
        return datetime.strptime(raw.split(".")[0], TIME_FORMAT)
    except ValueError:
        raise ManscdpError(f"{tag}: {raw[:24]!r} is not yyyy-MM-ddTHH:mm:ss") from None


def _choice(el: ET.Element, tag: str, yes: str, no: str) -> bool:
    raw = _text(el, tag).upper()
    if raw not in (yes, no):
        raise ManscdpError(f"{tag}: {raw[:20]!r} is neither {yes} nor {no}")
    return raw == yes


def _float(el: ET.Element, tag: str, limit: float) -> Optional[float]:
    raw = _text(el, tag, required=False)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ManscdpError(f"{tag}: {raw[:20]!r} is not a number") from None
    if not -limit <= value <= limit:
        raise ManscdpError(f"{tag}: {value} out of range")
    return value


def _list(el: ET.Element, tag: str) -> list[ET.Element]:
    holder = el.find(tag)
    if holder is None:
        return []
    items = holder.findall("Item")
    if len(items) > MAX_ITEMS:
        raise ManscdpError(f"{tag}: over {MAX_ITEMS} items")
    num = holder.get("Num")
    if num is not None and num != str(len(items)):
        raise ManscdpError(f"{tag}: Num={num[:10]!r} but {len(items)} items")
    return items


def parse(data: bytes) -> Message:
    if len(data) > MAX_BODY_BYTES:
        raise ManscdpError(f"body over {MAX_BODY_BYTES} bytes")
    text = _decode_text(data)
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ManscdpError(f"XML refused: {type(exc).__name__} (no DTD or entities allowed)") from None
    except ET.ParseError as exc:
        raise ManscdpError(f"not well-formed XML: {exc}") from None
    if root.tag not in ROOTS:
        raise ManscdpError(f"root element {root.tag[:20]!r} is not one of {', '.join(ROOTS)}")
    cmd = _text(root, "CmdType")
    if not re.fullmatch(r"[A-Za-z]{1,32}", cmd):
        raise ManscdpError(f"CmdType: {cmd[:20]!r} is not a command name")
    sn = _int(root, "SN", 0, 2**31 - 1)
    device_id = _gb_id(root)
    if root.tag == "Query" or root.tag == "Control":
        return Query(cmd, sn, device_id)
    if root.tag == "Notify" and cmd == "Keepalive":
        return Keepalive(sn, device_id, _text(root, "Status"))
    if root.tag == "Notify" and cmd == "Alarm":
        info = root.find("Info")
        alarm_type = _int(info, "AlarmType", 0, 99, required=False, default=-1) if info is not None else -1
        return AlarmNotify(sn, device_id, _int(root, "AlarmPriority", 1, 4), _int(root, "AlarmMethod", 1, 7),
                           _time(root, "AlarmTime"), _text(root, "AlarmDescription", required=False),
                           None if alarm_type < 0 else alarm_type, _float(root, "Longitude", 180),
                           _float(root, "Latitude", 90))
    if root.tag == "Response" and cmd == "Catalog":
        items = tuple(CatalogItem(
            _gb_id(it), _text(it, "Name", required=False), _text(it, "Status", required=False, default="ON"),
            _text(it, "Manufacturer", required=False), _text(it, "Model", required=False),
            _text(it, "Owner", required=False), _text(it, "CivilCode", required=False),
            _text(it, "Address", required=False), _int(it, "Parental", 0, 1, required=False),
            _text(it, "ParentID", required=False), _int(it, "RegisterWay", 1, 3, required=False, default=1),
            _int(it, "Secrecy", 0, 1, required=False)) for it in _list(root, "DeviceList"))
        sum_num = _int(root, "SumNum", 0, 100_000)
        if len(items) > sum_num:
            raise ManscdpError(f"SumNum: {sum_num} but this message alone holds {len(items)} items")
        return CatalogResponse(sn, device_id, sum_num, items)
    if root.tag == "Response" and cmd == "DeviceInfo":
        return DeviceInfoResponse(sn, device_id, _text(root, "DeviceName", required=False),
                                  _text(root, "Manufacturer", required=False), _text(root, "Model", required=False),
                                  _text(root, "Firmware", required=False), _int(root, "Channel", 0, 100_000, False),
                                  _text(root, "Result"))
    if root.tag == "Response" and cmd == "DeviceStatus":
        alarms = tuple(DutyStatus(_gb_id(it), _text(it, "DutyStatus")) for it in _list(root, "Alarmstatus"))
        return DeviceStatusResponse(sn, device_id, _choice(root, "Online", "ONLINE", "OFFLINE"),
                                    _choice(root, "Status", "OK", "ERROR"), _choice(root, "Encode", "ON", "OFF"),
                                    _choice(root, "Record", "ON", "OFF"), _time(root, "DeviceTime"), alarms,
                                    _text(root, "Result"))
    if root.tag == "Response":
        return Reply(cmd, sn, device_id, _text(root, "Result", required=False))
    raise ManscdpError(f"{root.tag} {cmd}: not a message this side reads")

"""The MANSCDP codec: bodies as the standard's annex writes them, GB2312 and UTF-8, the Catalog
split across messages, round trips, and XML attacks refused."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from wire import manscdp as m

DEV = "34020000001180000001"
CAM = "34020000001320000001"

CATALOG_QUERY_GB = ('<?xml version="1.0" encoding="GB2312"?>\r\n<Query>\r\n<CmdType>Catalog</CmdType>\r\n'
                    f'<SN>17430</SN>\r\n<DeviceID>{DEV}</DeviceID>\r\n</Query>\r\n').encode("gb2312")


def test_query_as_platforms_send_it():
    assert m.parse(CATALOG_QUERY_GB) == m.Query("Catalog", 17430, DEV)
    utf8 = CATALOG_QUERY_GB.replace(b"GB2312", b"UTF-8")
    assert m.parse(utf8) == m.Query("Catalog", 17430, DEV)


def test_keepalive_layout():
    body = m.encode(m.Keepalive(7, DEV))
    assert body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    assert (b"<Notify><CmdType>Keepalive</CmdType><SN>7</SN><DeviceID>" + DEV.encode()
            + b"</DeviceID><Status>OK</Status></Notify>") in body
    assert m.parse(body) == m.Keepalive(7, DEV)


def test_chinese_names_go_out_in_gb2312_and_fall_back_to_utf8():
    item = m.CatalogItem(CAM, "大班教室", "ON")
    body = m.encode(m.CatalogResponse(1, DEV, 1, (item,)))
    assert "大班教室".encode("gb2312") in body and b'encoding="GB2312"' in body
    assert m.parse(body).items[0].name == "大班教室"
    # 㐀 (CJK extension A) is outside GB2312: written as UTF-8, declared so.
    odd = m.encode(m.CatalogResponse(1, DEV, 1, (m.CatalogItem(CAM, "教室㐀"),)))
    assert b'encoding="UTF-8"' in odd and m.parse(odd).items[0].name == "教室㐀"


def test_utf8_body_declared_gb2312_is_read_as_utf8():
    body = m.encode(m.CatalogResponse(1, DEV, 1, (m.CatalogItem(CAM, "大班教室"),)))
    lying = body.replace("大班教室".encode("gb2312"), "大班教室".encode("utf-8"))
    assert m.parse(lying).items[0].name == "大班教室"


def test_catalog_split_keeps_sn_and_sum_and_every_item():
    items = [m.CatalogItem(f"3402000000132{i:07d}", f"教室{i}", "ON" if i % 2 else "OFF", "CareGuard", "edge",
                           "0", "340200", "托育园", 0, DEV) for i in range(9)]
    parts = m.split_catalog(44, DEV, items, max_body=1200)
    assert len(parts) > 1
    assert all(p.sn == 44 and p.sum_num == 9 and len(m.encode(p)) <= 1200 for p in parts)
    got = [it for p in parts for it in m.parse(m.encode(p)).items]
    assert got == items
    assert m.split_catalog(1, DEV, [], 1200) == [m.CatalogResponse(1, DEV, 0, ())]


def test_device_status_and_info_round_trip():
    st_ = m.DeviceStatusResponse(3, DEV, True, True, True, False, datetime(2026, 5, 1, 8, 30, 0),
                                 (m.DutyStatus(DEV, "ALARM"),))
    assert m.parse(m.encode(st_)) == st_
    info = m.DeviceInfoResponse(4, DEV, "Gate", "CareGuard", "edge", "0.1.0", 3)
    assert m.parse(m.encode(info)) == info


def test_alarm_notify_fields():
    a = m.AlarmNotify(9, DEV, 1, 2, datetime(2026, 5, 1, 8, 30, 5), "一键报警 大班", 2, 121.5, 31.2)
    body = m.encode(a)
    assert b"<AlarmTime>2026-05-01T08:30:05</AlarmTime>" in body and b"<Info><AlarmType>2</AlarmType></Info>" in body
    assert m.parse(body) == a


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>&lol3;</DeviceID></Query>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE q [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>&x;</DeviceID></Query>"""
DTD_ONLY = b"""<?xml version="1.0"?><!DOCTYPE Query SYSTEM "http://203.0.113.1/q.dtd">
<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000001180000001</DeviceID></Query>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, DTD_ONLY])
def test_dtds_and_entities_are_refused(data):
    with pytest.raises(m.ManscdpError, match="no DTD or entities"):
        m.parse(data)


@pytest.mark.parametrize("data,reason", [
    (b"<Query><CmdType>Catalog</CmdType><SN>1</SN>", "not well-formed"),
    (b"<Evil><CmdType>Catalog</CmdType></Evil>", "root element"),
    (CATALOG_QUERY_GB.replace(DEV.encode(), b"12345"), "DeviceID: '12345' is not a 20-digit"),
    (CATALOG_QUERY_GB.replace(b"17430", b"-1"), "SN:"),
    (CATALOG_QUERY_GB.replace(b"<SN>17430</SN>", b""), "SN: element missing"),
    (CATALOG_QUERY_GB.replace(b"Catalog", b"Cat alog"), "CmdType"),
    (CATALOG_QUERY_GB.replace(b"GB2312", b"EBCDIC"), "unsupported"),
    (CATALOG_QUERY_GB.replace(b"Catalog", b"C" * 300), "longer than 256"),
    (b"<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>" + DEV.encode()
     + b"</DeviceID><SumNum>5</SumNum><DeviceList Num=\"2\"><Item><DeviceID>" + CAM.encode()
     + b"</DeviceID></Item></DeviceList></Response>", "Num='2' but 1 items"),
    (b"<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>" + DEV.encode()
     + b"</DeviceID><AlarmPriority>9</AlarmPriority><AlarmMethod>2</AlarmMethod>"
       b"<AlarmTime>2026-05-01T08:30:05</AlarmTime></Notify>", "AlarmPriority"),
    (b"x" * 70_000, "over 65535 bytes"),
])
def test_bad_bodies_are_refused_with_a_reason(data, reason):
    with pytest.raises(m.ManscdpError) as err:
        m.parse(data)
    assert reason in str(err.value)


_ids = st.text("0123456789", min_size=20, max_size=20)
_names = st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs")), max_size=30).map(str.strip)
_items = st.builds(m.CatalogItem, _ids, _names, st.sampled_from(["ON", "OFF"]), _names, _names, st.just("0"),
                   st.text("0123456789", max_size=6), _names, st.integers(0, 1), _ids, st.integers(1, 3),
                   st.integers(0, 1))
_times = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0))
_messages = st.one_of(
    st.builds(m.Keepalive, st.integers(0, 2**31 - 1), _ids),
    st.builds(m.Query, st.sampled_from(["Catalog", "DeviceInfo", "DeviceStatus"]), st.integers(0, 2**31 - 1), _ids),
    st.builds(lambda sn, dev, items: m.CatalogResponse(sn, dev, len(items), tuple(items)),
              st.integers(0, 2**31 - 1), _ids, st.lists(_items, max_size=4)),
    st.builds(m.AlarmNotify, st.integers(0, 2**31 - 1), _ids, st.integers(1, 4), st.integers(1, 7), _times, _names,
              st.one_of(st.none(), st.integers(0, 99))),
    st.builds(m.DeviceStatusResponse, st.integers(0, 2**31 - 1), _ids, st.booleans(), st.booleans(), st.booleans(),
              st.booleans(), _times, st.lists(st.builds(m.DutyStatus, _ids, st.sampled_from(["ONDUTY", "ALARM"])),
                                              max_size=3).map(tuple)),
)


@given(_messages)
@settings(max_examples=200, deadline=None)
def test_round_trip(msg):
    assert m.parse(m.encode(msg)) == msg


@given(st.binary(max_size=500))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_manscdp_errors(data):
    for d in (data, CATALOG_QUERY_GB[:80] + data, b"<Query><CmdType>Catalog</CmdType>" + data):
        try:
            m.parse(d)
        except m.ManscdpError:
            pass

"""DC-09 event codes per alarm kind, SIA-DCS and ADM-CID (Contact ID), as DESIGN.md lists them."""

from contracts.alarms import AlarmKind

# (kind, restore?) -> (SIA code, Contact ID event qualifier+code)
SIA_CODES: dict[tuple[AlarmKind, bool], str] = {
    (AlarmKind.PANIC, False): "PA",
    (AlarmKind.PANIC, True): "PR",
    (AlarmKind.FIRE, False): "FA",
    (AlarmKind.FIRE, True): "FR",
    (AlarmKind.INTRUSION, False): "BA",
    (AlarmKind.INTRUSION, True): "BR",
    (AlarmKind.TAMPER, False): "TA",
    (AlarmKind.TAMPER, True): "TR",
    (AlarmKind.TEST, False): "TX",
}
CID_CODES: dict[tuple[AlarmKind, bool], str] = {
    (AlarmKind.PANIC, False): "1120",
    (AlarmKind.PANIC, True): "3120",
    (AlarmKind.FIRE, False): "1110",
    (AlarmKind.FIRE, True): "3110",
    (AlarmKind.INTRUSION, False): "1130",
    (AlarmKind.INTRUSION, True): "3130",
    (AlarmKind.TAMPER, False): "1137",
    (AlarmKind.TAMPER, True): "3137",
    (AlarmKind.TEST, False): "1601",
}
PERIODIC_TEST_SIA = "RP"
PERIODIC_TEST_CID = "1602"
MANUAL_TEST_SIA = "TX"
MANUAL_TEST_CID = "1601"

# Kinds that go to the police receiver; the rest (camera, retention...) go to the cloud only.
POLICE_KINDS = frozenset(k for k, _ in SIA_CODES)

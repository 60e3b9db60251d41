"""GB/T 28181 on the gateway, against SIPp playing the police video platform (tests/sipp/platform.xml).

- register_to_online_ms: from the device starting to the platform's 200 OK taken (REGISTER,
  401 digest challenge, REGISTER with credentials), repeated.
- press → Alarm notify at the platform, p50/p99, and press → DC-09 frame at the police
  receiver in the same run, same presses: an edge agent (its own process, as in production)
  with one panic zone per press; the notify's arrival is SIPp's own log time of the MESSAGE.
- invite_to_first_rtp_ms: from SIPp sending INVITE (its log time) to the first RTP packet at
  the platform's media port; ffmpeg starting on the ACK dominates it.
- edge CPU per live stream (one core = 100 %) at 640x360 and 1080p, 25 fps: ffmpeg encoding
  plus our framing, PS and RTP; the baseline, interleaved in the same run, is ffmpeg alone
  encoding the same source to a null sink.

Prints one JSON line. Never passes or fails. CG_BENCH_GB_PRESSES (default 100),
CG_BENCH_GB_REGISTERS (20), CG_BENCH_GB_PLAYS (4), CG_BENCH_GB_CPU_S (8) make it longer or shorter."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arc.receiver import ArcAccount, ArcReceiver  # noqa: E402
from contracts import topics  # noqa: E402
from contracts.device import DeviceEvent, DeviceEventKind  # noqa: E402
from contracts.timefmt import utcnow  # noqa: E402
from edge.config import GbConfig  # noqa: E402
from edge.gb28181.catalog import Channel  # noqa: E402
from edge.gb28181.device import GbDevice  # noqa: E402
from edge.gb28181.media import MediaSession, ffmpeg_command  # noqa: E402
from testing.server_thread import PanicArrivals, ServerThread  # noqa: E402
from testing.services import LOOPBACK, Mosquitto, Sipp  # noqa: E402
from wire.mqtt_client import make_client  # noqa: E402

N_PRESSES = int(os.environ.get("CG_BENCH_GB_PRESSES", "100"))
N_REGISTERS = int(os.environ.get("CG_BENCH_GB_REGISTERS", "20"))
N_PLAYS = int(os.environ.get("CG_BENCH_GB_PLAYS", "4"))
CPU_S = float(os.environ.get("CG_BENCH_GB_CPU_S", "8"))
SCENARIO = ROOT / "tests" / "sipp" / "platform.xml"
PLATFORM_ID, DOMAIN, DEVICE_ID = "34020000002000000001", "3402000000", "34020000001180000001"
CHANNEL = "34020000001320000001"
TIMEOUT_S = 5.0
AES_KEY = "000102030405060708090a0b0c0d0e0f"  # the police path encrypted, as deployed
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def platform(work: Path, **keys) -> Sipp:
    return Sipp(SCENARIO, work / "sipp", keys={
        "realm": DOMAIN, "nonce": "b3nch", "qop": ', qop="auth"', "device_id": DEVICE_ID, "password": "secret",
        "expires": "3600", "platform_id": PLATFORM_ID, "then": "", "channel": CHANNEL, "rtp_ip": LOOPBACK,
        "rtp_port": "9", "rtp_proto": "RTP/AVP", "setup": "", "ssrc": "0100000001", **keys},
        variables={"play_ms": "1500"})


def gb_config(port: int, **over) -> GbConfig:
    return GbConfig(**{"platform_id": PLATFORM_ID, "platform_domain": DOMAIN, "platform_host": LOOPBACK,
                       "platform_port": port, "device_id": DEVICE_ID, "password": "secret", "local_ip": LOOPBACK,
                       "local_port": 0, "keepalive_s": 30, **over})


def clip(work: Path, size: str) -> str:
    path = work / f"cam-{size}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-t", "4",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return str(path)


# --- registration -------------------------------------------------------------------------------
async def register_times(work: Path) -> list[float]:
    out = []
    with platform(work) as sipp:
        for _ in range(N_REGISTERS):
            online = asyncio.Event()
            device = GbDevice(gb_config(sipp.port), [], timezone="Asia/Shanghai",
                              on_state=lambda up, reason: online.set() if up else None)
            t0 = time.perf_counter()
            await device.start()
            try:
                await asyncio.wait_for(online.wait(), TIMEOUT_S)
                out.append((time.perf_counter() - t0) * 1000)
            except TimeoutError:
                pass
            await device.close()
    return out


# --- press to the police and to the video platform ----------------------------------------------
def write_agent_config(path: Path, local: str, uplink: str, arc_port: int, sip_port: int, db: Path) -> None:
    zones = "".join(f'\n[[zones]]\nid = "z{i}"\nnumber = {i}\nkind = "panic"\ndevices = ["btn{i}"]\n'
                    for i in range(1, N_PRESSES + 1))
    path.write_text(f'''facility_id = "BENCH"
local_broker = "{local}"
[uplink]
broker = "{uplink}"
[police]
account = "1234"
key = "{AES_KEY}"
receivers = [{{ host = "{LOOPBACK}", port = {arc_port} }}]
[outbox]
path = "{db}"
[gb28181]
platform_id = "{PLATFORM_ID}"
platform_domain = "{DOMAIN}"
platform_host = "{LOOPBACK}"
platform_port = {sip_port}
device_id = "{DEVICE_ID}"
password = "secret"
local_ip = "{LOOPBACK}"
local_port = 0
keepalive_s = 30
{zones}''')


def notify_times(sipp: Sipp) -> dict[int, float]:
    """zone number -> when SIPp logged the Alarm notify for it (the description names the zone)."""
    out = {}
    for when, direction, raw in sipp.timed_messages():
        if direction == "received" and b"<CmdType>Alarm</CmdType>" in raw:
            m = re.search(rb"<AlarmDescription>[^<]* z(\d+)</AlarmDescription>", raw.decode("gb18030").encode())
            if m:
                out.setdefault(int(m.group(1)), when)
    return out


def press_times(work: Path) -> tuple[list[float], list[float], int, int]:
    (work / "local").mkdir(parents=True)
    (work / "up").mkdir()
    local = Mosquitto(workdir=str(work / "local")).start()
    uplink = Mosquitto(workdir=str(work / "up")).start()
    arrivals = PanicArrivals()
    arc = ServerThread(ArcReceiver({"1234": ArcAccount(key=AES_KEY)}, on_alarm=arrivals), name="arc")
    sipp = platform(work).start()
    cfg = work / "edge.toml"
    write_agent_config(cfg, local.url, uplink.url, arc.start(), sipp.port, work / "edge.sqlite3")
    agent = subprocess.Popen([sys.executable, "-m", "careguard", "edge", "--config", str(cfg), "--log-level", "ERROR"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(work / "agent.log", "w"))
    pressed: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 20
        while not any(b"REGISTER" in raw for _, raw in sipp.messages()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # registered, keepalive answered
        pub, addr = make_client(local.url, "bench-buttons")
        pub.connect(addr.host, addr.port)
        pub.loop_start()
        for i in range(1, N_PRESSES + 1):
            ev = DeviceEvent(id=uuid.uuid4(), device_id=f"btn{i}", ts=utcnow(), event=DeviceEventKind.PRESS)
            payload = ev.model_dump_json().encode()
            pressed[i] = time.time()
            pub.publish(topics.dev_event(f"btn{i}"), payload, qos=1)
            end = time.monotonic() + TIMEOUT_S
            while i not in arrivals.arrived and time.monotonic() < end:
                time.sleep(0.001)
            time.sleep(0.02)
        time.sleep(1.0)  # the last notifies reach the platform
        pub.loop_stop()
        pub.disconnect()
    finally:
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
        sipp.stop()
        arc.stop()
        local.close()
        uplink.close()
    notified = notify_times(sipp)
    dc09 = [(arrivals.arrived[i] - t) * 1000 for i, t in pressed.items() if i in arrivals.arrived]
    gb = [(notified[i] - t) * 1000 for i, t in pressed.items() if i in notified]
    return dc09, gb, N_PRESSES - len(dc09), N_PRESSES - len(gb)


# --- INVITE to the first RTP packet --------------------------------------------------------------
async def invite_times(work: Path, source: str) -> list[float]:
    out = []
    loop = asyncio.get_running_loop()
    for run in range(N_PLAYS):
        first: list[float] = []

        class Sink(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if not first:
                    first.append(time.time())

        sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=(LOOPBACK, 0))
        sipp = platform(work / f"play{run}", then="play", rtp_port=str(sink.get_extra_info("sockname")[1]))
        with sipp:
            device = GbDevice(gb_config(sipp.port), [Channel(CHANNEL, "cam", "cam", source)],
                              timezone="Asia/Shanghai", camera_online=lambda: {"cam": True})
            await device.start()
            end = time.monotonic() + 20
            while device.counters["streams_ended"] == 0 and time.monotonic() < end:
                await asyncio.sleep(0.05)
            await device.close()
        sink.close()
        invites = [when for when, d, raw in sipp.timed_messages() if d == "sent" and raw.startswith(b"INVITE ")]
        if invites and first:
            out.append((first[0] - invites[0]) * 1000)
    return out


# --- CPU per stream ------------------------------------------------------------------------------
def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def stream_cpu(source: str) -> float:
    """CPU % of one core for one live stream (ffmpeg + this process), measured after a second of warm-up."""
    loop = asyncio.get_running_loop()
    sink, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(LOOPBACK, 0))
    session = MediaSession(source=source, dest=(LOOPBACK, sink.get_extra_info("sockname")[1]), mode="udp",
                           ssrc=1, payload_type=96, fps=25, bind_ip=LOOPBACK, on_end=lambda s, r: None)
    await session.prepare()
    session.start()
    while session._proc is None:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0)
    pid = session._proc.pid
    c0, s0, t0 = _proc_cpu_s(pid), _self_cpu_s(), time.monotonic()
    await asyncio.sleep(CPU_S)
    c1, s1, t1 = _proc_cpu_s(pid), _self_cpu_s(), time.monotonic()
    await session.stop()
    sink.close()
    return 100 * ((c1 - c0) + (s1 - s0)) / (t1 - t0)


def encode_only_cpu(source: str) -> float:
    """The same ffmpeg command writing to a null sink: the encoding alone."""
    proc = subprocess.Popen(ffmpeg_command(source, 25), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        c0, t0 = _proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(CPU_S)
        c1, t1 = _proc_cpu_s(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(10)
    return 100 * (c1 - c0) / (t1 - t0)


async def main_async(work: Path) -> dict:
    registers = await register_times(work / "register")
    dc09, gb, lost_dc09, lost_gb = await asyncio.to_thread(press_times, work / "press")
    small, large = clip(work, "640x360"), clip(work, "1920x1080")
    invites = await invite_times(work / "invite", small)
    cpu = {}
    for name, source in (("640x360", small), ("1080p", large)):
        ours, base = [], []
        for _ in range(2):  # interleaved: ours, ffmpeg alone, ours, ffmpeg alone
            ours.append(await stream_cpu(source))
            base.append(await asyncio.to_thread(encode_only_cpu, source))
        cpu[name] = (statistics.mean(ours), statistics.mean(base))
    return {
        "register_to_online_ms_p50": round(statistics.median(registers), 1) if registers else None,
        "register_to_online_ms_max": round(max(registers), 1) if registers else None, "registers": len(registers),
        "presses": N_PRESSES, "lost_dc09": lost_dc09, "lost_gb_notify": lost_gb,
        "press_to_dc09_ms_p50": round(statistics.median(dc09), 2), "press_to_dc09_ms_p99": round(percentile(dc09, 99), 2),
        "press_to_gb_notify_ms_p50": round(statistics.median(gb), 2),
        "press_to_gb_notify_ms_p99": round(percentile(gb, 99), 2),
        "invite_to_first_rtp_ms_p50": round(statistics.median(invites), 1) if invites else None,
        "invite_to_first_rtp_ms_max": round(max(invites), 1) if invites else None, "plays": len(invites),
        **{f"stream_cpu_pct_{k}": round(v[0], 1) for k, v in cpu.items()},
        **{f"encode_only_cpu_pct_{k}": round(v[1], 1) for k, v in cpu.items()},
        **{f"ratio_cpu_{k}": round(v[0] / v[1], 2) for k, v in cpu.items()},
    }


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # the scenario's malformed query is refused on purpose
    work = Path(tempfile.mkdtemp(prefix="cg-bench-gb-"))
    try:
        print(json.dumps(asyncio.run(main_async(work))))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

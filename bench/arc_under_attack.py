"""The police receiver under attack, and a city-wide burst, in one run.

1. Press → ACK under attack. The setup of bench/alarm_latency.py (a loaded edge agent, `careguard
   arc` with AES, each in its own process) times presses in alternating blocks: the receiver idle,
   then while an attacker process (same machine, same 2 cores) holds 1,000 idle connections from
   50 addresses and runs 4 flooders writing bad max-size frames for a known account (bad CRC, and
   good CRC over garbage ciphertext) as fast as it can. Reports p50/p99 of each, their ratio (goal
   ≤ 2) and `lost` (alarm ids pressed and never acknowledged, goal 0). A flooder the receiver hangs
   up on reconnects at once and floods again. The attacker competes for the same CPU as the
   receiver and the gateway: its CPU use (user + system, in cores) is reported beside the
   receiver's in each kind of block, so a reviewer can tell receiver cost from CPU contention.
2. City-wide burst. 1,000 accounts, each a gateway's DC-09 link (PoliceLink, AES) with its own
   connection already open, send one panic at the same moment. Reports ACK latency p50/p99 from
   the moment of the burst (senders on the same cores as the receiver), and checks every alarm was
   ACKed and stored once. All senders share 127.0.0.1 here, so this receiver's per-source cap is
   raised to 1,100; in the field they are 1,000 addresses. The CPU the receiver and the senders'
   process spent on the burst is reported (the senders' CPU bounds the figure from below: they run
   one after another in one process), and the receiver's commits (fsyncs) for the 1,000 alarms.

The machine's load average is reported: other work on the same cores shows in every latency.

Prints one JSON line; never passes or fails. `python bench/arc_under_attack.py` is the README run."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alarm_latency import (ACCOUNT, LOOPBACK, Dc09RoundTrip, Gateway, MqttHop, Receiver, latencies,  # noqa: E402
                           percentile, run_presses, summary)
from contracts.alarms import AlarmKind  # noqa: E402
from contracts.timefmt import utcnow  # noqa: E402
from edge.config import PoliceConfig  # noqa: E402
from edge.police.dc09_link import PoliceEvent, PoliceLink  # noqa: E402
from wire import dc09  # noqa: E402

PRESSES_PER_BLOCK = int(os.environ.get("CG_BENCH_BLOCK", "30"))
ROUNDS = 4  # idle block, attack block, four times
IDLE_CONNECTIONS = 1000
IDLE_SOURCES = 50
FLOODERS = 4
BURST = int(os.environ.get("CG_BENCH_BURST", "1000"))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def receiver_counters(receiver: Receiver) -> dict[str, int]:
    """The counters `careguard arc` logs when it stops (call after receiver.close())."""
    m = re.search(r"ARC counters: (\{.*\})", (receiver.db.parent / "arc.log").read_text())
    return {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", m.group(1))} if m else {}


# --- the attacker, in its own process ------------------------------------------------------------
def _bad_frames(account: str) -> list[bytes]:
    head = f'"*SIA-DCS"0001L0#{account}['
    body = (head + "AB" * ((0xFFF - len(head)) // 2)).encode()
    good_crc = b"\n" + b"%04X%04X" % (dc09.crc16(body), len(body)) + body + b"\r"
    return [good_crc[:1] + b"%04X" % (dc09.crc16(body) ^ 1) + good_crc[5:], good_crc]


async def _attack(port: int, stop: asyncio.Event, opened: asyncio.Event) -> dict:
    idle = []
    for i in range(IDLE_CONNECTIONS):
        try:
            idle.append(await asyncio.open_connection(
                LOOPBACK, port, local_addr=(f"127.0.1.{1 + i % IDLE_SOURCES}", 0)))
        except OSError:
            pass
    frames = _bad_frames(ACCOUNT)
    sent = [0] * FLOODERS

    async def flood(n: int) -> None:
        # Hung up on (the receiver closes a connection whose first frame fails), it comes straight
        # back, as an attacker would.
        while not stop.is_set():
            try:
                _, w = await asyncio.open_connection(LOOPBACK, port, local_addr=(f"127.0.2.{1 + n}", 0))
                while not stop.is_set():
                    w.write(frames[sent[n] % 2])
                    sent[n] += 1
                    await w.drain()
                w.close()
            except (ConnectionError, OSError):
                await asyncio.sleep(0)

    tasks = [asyncio.create_task(flood(n)) for n in range(FLOODERS)]
    opened.set()
    t0, cpu0 = time.monotonic(), os.times()
    await stop.wait()
    await asyncio.gather(*tasks)
    wall, cpu1 = time.monotonic() - t0, os.times()
    still_open = sum(not r.at_eof() for r, _ in idle)
    for _, w in idle:
        w.close()
    return {"idle_opened": len(idle), "idle_still_open": still_open, "flood_frames": sum(sent), "wall_s": wall,
            "cpu_s": cpu1.user - cpu0.user + cpu1.system - cpu0.system}


def attacker(port: int, conn) -> None:
    """Run until the parent sends "stop"; answer "open" once connected and flooding, then the tally."""
    async def main():
        stop, opened = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(_attack(port, stop, opened))
        await opened.wait()
        conn.send("open")
        await loop.run_in_executor(None, conn.recv)
        stop.set()
        conn.send(await task)
    asyncio.run(main())


# --- part 1 -------------------------------------------------------------------------------------
def press_under_attack(work: Path) -> dict:
    key = secrets.token_hex(16)
    receiver = Receiver(work, {ACCOUNT: key}, {"max_connections": 4096})
    gw = hop = rtt = None
    ctx = mp.get_context("spawn")
    idle_pressed: dict[str, float] = {}
    attack_pressed: dict[str, float] = {}
    tallies = []
    # [cpu s, wall s] of the receiver in idle blocks and in attack blocks
    receiver_use = {"idle": [0.0, 0.0], "attack": [0.0, 0.0]}

    def timed(kind: str, presses):
        t0, c0 = time.monotonic(), cpu_s(receiver.proc.pid)
        out = presses()
        receiver_use[kind][0] += cpu_s(receiver.proc.pid) - c0
        receiver_use[kind][1] += time.monotonic() - t0
        return out

    try:
        gw = Gateway(work, receiver, key, 2 * ROUNDS * PRESSES_PER_BLOCK)
        hop, rtt = MqttHop(gw.local.url), Dc09RoundTrip(receiver.port, ACCOUNT, key)
        zone = 1
        for _ in range(ROUNDS):
            zones = range(zone, zone + PRESSES_PER_BLOCK)
            idle_pressed |= timed("idle", lambda: run_presses(gw, zones, [], hop, rtt))
            zone += PRESSES_PER_BLOCK
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=attacker, args=(receiver.port, child), daemon=True)
            proc.start()
            assert parent.poll(60) and parent.recv() == "open"
            zones = range(zone, zone + PRESSES_PER_BLOCK)
            attack_pressed |= timed("attack", lambda: run_presses(gw, zones, [], hop, rtt))
            zone += PRESSES_PER_BLOCK
            parent.send("stop")
            tallies.append(parent.recv() if parent.poll(60) else {})
            proc.join(30)
        deadline = time.monotonic() + 10
        pressed = idle_pressed | attack_pressed
        while time.monotonic() < deadline and not set(pressed) <= set(gw.delivered):
            time.sleep(0.1)
        idle, attack = latencies(idle_pressed, gw.delivered), latencies(attack_pressed, gw.delivered)
        lost = len(set(pressed) - set(gw.delivered))
    finally:
        for part in (hop, rtt, gw, receiver):
            if part is not None:
                part.close()
    # The gateway's link and the baseline's connection are the only others.
    attack_connections = receiver_counters(receiver).get("connections", 0) - 2
    return {"n_idle": len(idle_pressed), "n_attack": len(attack_pressed), "lost": lost,
            "idle": summary(idle), "attack": summary(attack),
            "ratio_p99": round(percentile(attack, 99) / percentile(idle, 99), 2),
            "ratio_p50": round(percentile(attack, 50) / percentile(idle, 50), 2),
            "attack_idle_connections": min((t.get("idle_opened", 0) for t in tallies), default=0),
            "attack_flood_frames": sum(t.get("flood_frames", 0) for t in tallies),
            "attack_flooders": FLOODERS,
            "attacker_cpu_cores": round(sum(t.get("cpu_s", 0) for t in tallies)
                                        / max(sum(t.get("wall_s", 0) for t in tallies), 1e-9), 2),
            "receiver_cpu_cores_idle": round(receiver_use["idle"][0] / receiver_use["idle"][1], 2),
            "receiver_cpu_cores_attack": round(receiver_use["attack"][0] / receiver_use["attack"][1], 2),
            # What one attacking connection (idle or flooding) costs the receiver, whatever the contention.
            "receiver_us_per_attack_connection": round(
                (receiver_use["attack"][0] - receiver_use["idle"][0]) * 1e6 / max(attack_connections, 1)),
            "cores": os.cpu_count()}


# --- part 2 -------------------------------------------------------------------------------------
async def _burst(port: int, accounts: dict[str, str], receiver_pid: int) -> tuple[list[float], dict[str, str], dict]:
    links = [PoliceLink(PoliceConfig(account=acct, key=key, supervision_interval_s=3600,
                                     receivers=[{"host": LOOPBACK, "port": port}])) for acct, key in accounts.items()]
    for link in links:
        await link.start()  # one NULL each: every gateway's connection is open before the burst
    for _ in range(600):
        if all(all(link.path_states().values()) for link in links):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    sent: dict[str, str] = {}
    done: list[float] = []

    async def panic(link: PoliceLink) -> None:
        event = PoliceEvent(alarm_id=uuid.uuid4(), kind=AlarmKind.PANIC, restore=False, zone=1, ts=utcnow())
        sent[link.cfg.account] = str(event.alarm_id)
        await asyncio.wait_for(link.send(event), 30)
        done.append((time.perf_counter() - t0) * 1000)

    cpu0, receiver_cpu0 = time.process_time(), cpu_s(receiver_pid)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(panic(link) for link in links), return_exceptions=True)
    cpu = {"receiver_cpu_ms": round((cpu_s(receiver_pid) - receiver_cpu0) * 1000),
           "senders_cpu_ms": round((time.process_time() - cpu0) * 1000)}
    for link in links:
        await link.close()
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        print(f"burst: {len(failed)} sends failed: {failed[0]!r}", file=sys.stderr)
    return done, sent, cpu


def city_burst(work: Path) -> dict:
    accounts = {f"{0x10000 + i:X}": secrets.token_hex(16) for i in range(BURST)}
    receiver = Receiver(work, accounts, {"max_connections": 4096, "max_per_source": BURST + 100})
    try:
        done, sent, cpu = asyncio.run(_burst(receiver.port, accounts, receiver.proc.pid))
        with sqlite3.connect(receiver.db) as db:
            stored = db.execute("SELECT account, alarm_id FROM arc_alarms").fetchall()
    finally:
        receiver.close()
    commits = receiver_counters(receiver).get("commits")
    per_alarm: dict[str, int] = {}
    for acct, alarm_id in stored:
        if sent.get(acct) == alarm_id:
            per_alarm[alarm_id] = per_alarm.get(alarm_id, 0) + 1
    return {"accounts": BURST, "acked": len(done), "stored_once": sum(n == 1 for n in per_alarm.values()),
            "stored_rows": len(stored), "ack": summary(done), **cpu, "commits": commits,
            "senders": "1,000 PoliceLinks in one process, on the same cores as the receiver"}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cg-bench-attack-"))
    try:
        (work / "p1").mkdir()
        (work / "p2").mkdir()
        load = os.getloadavg()[0]
        out = {"press_under_attack": press_under_attack(work / "p1"), "city_burst": city_burst(work / "p2"),
               "load_average_1min": [round(load, 1), round(os.getloadavg()[0], 1)]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The police receiver under attack, and a city-wide burst, in one run.

1. Press → ACK under attack. The setup of bench/alarm_latency.py (a loaded edge agent, `careguard
   arc` with AES, each in its own process) times presses in alternating blocks: the receiver idle,
   then while an attacker process (same machine, same 2 cores) holds 1,000 idle connections from
   50 addresses and runs 4 flooders writing bad max-size frames for a known account (bad CRC, and
   good CRC over garbage ciphertext) as fast as it can. Reports p50/p99 of each, their ratio (goal
   ≤ 2) and `lost` (alarm ids pressed and never acknowledged, goal 0). A flooder the receiver hangs
   up on reconnects at once and floods again.
2. City-wide burst. 1,000 accounts, each a gateway's DC-09 link (PoliceLink, AES) with its own
   connection already open, send one panic at the same moment. Reports ACK latency p50/p99 from
   the moment of the burst (senders on the same cores as the receiver), and checks every alarm was
   ACKed and stored once. All senders share 127.0.0.1 here, so this receiver's per-source cap is
   raised to 1,100; in the field they are 1,000 addresses.

Prints one JSON line; never passes or fails. `python bench/arc_under_attack.py` is the README run."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
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
    await stop.wait()
    await asyncio.gather(*tasks)
    still_open = sum(not r.at_eof() for r, _ in idle)
    for _, w in idle:
        w.close()
    return {"idle_opened": len(idle), "idle_still_open": still_open, "flood_frames": sum(sent)}


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
    try:
        gw = Gateway(work, receiver, key, 2 * ROUNDS * PRESSES_PER_BLOCK)
        hop, rtt = MqttHop(gw.local.url), Dc09RoundTrip(receiver.port, ACCOUNT, key)
        zone = 1
        for _ in range(ROUNDS):
            idle_pressed |= run_presses(gw, range(zone, zone + PRESSES_PER_BLOCK), [], hop, rtt)
            zone += PRESSES_PER_BLOCK
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=attacker, args=(receiver.port, child), daemon=True)
            proc.start()
            assert parent.poll(60) and parent.recv() == "open"
            attack_pressed |= run_presses(gw, range(zone, zone + PRESSES_PER_BLOCK), [], hop, rtt)
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
    return {"n_idle": len(idle_pressed), "n_attack": len(attack_pressed), "lost": lost,
            "idle": summary(idle), "attack": summary(attack),
            "ratio_p99": round(percentile(attack, 99) / percentile(idle, 99), 2),
            "ratio_p50": round(percentile(attack, 50) / percentile(idle, 50), 2),
            "attack_idle_connections": min((t.get("idle_opened", 0) for t in tallies), default=0),
            "attack_flood_frames": sum(t.get("flood_frames", 0) for t in tallies),
            "attack_flooders": FLOODERS}


# --- part 2 -------------------------------------------------------------------------------------
async def _burst(port: int, accounts: dict[str, str]) -> tuple[list[float], dict[str, str]]:
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

    t0 = time.perf_counter()
    results = await asyncio.gather(*(panic(link) for link in links), return_exceptions=True)
    for link in links:
        await link.close()
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        print(f"burst: {len(failed)} sends failed: {failed[0]!r}", file=sys.stderr)
    return done, sent


def city_burst(work: Path) -> dict:
    accounts = {f"{0x10000 + i:X}": secrets.token_hex(16) for i in range(BURST)}
    receiver = Receiver(work, accounts, {"max_connections": 4096, "max_per_source": BURST + 100})
    try:
        done, sent = asyncio.run(_burst(receiver.port, accounts))
        with sqlite3.connect(receiver.db) as db:
            stored = db.execute("SELECT account, alarm_id FROM arc_alarms").fetchall()
    finally:
        receiver.close()
    per_alarm: dict[str, int] = {}
    for acct, alarm_id in stored:
        if sent.get(acct) == alarm_id:
            per_alarm[alarm_id] = per_alarm.get(alarm_id, 0) + 1
    return {"accounts": BURST, "acked": len(done), "stored_once": sum(n == 1 for n in per_alarm.values()),
            "stored_rows": len(stored), "ack": summary(done)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cg-bench-attack-"))
    try:
        (work / "p1").mkdir()
        (work / "p2").mkdir()
        out = {"press_under_attack": press_under_attack(work / "p1"), "city_burst": city_burst(work / "p2")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

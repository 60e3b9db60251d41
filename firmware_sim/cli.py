"""`careguard sim`: run a simulated device, or press a simulated button once; run a simulated
Zigbee2MQTT bridge with its devices, or send one click through it.

    careguard sim device --broker URL --device-id ID --kind co2 [--interval S] [--fault drift] ...
    careguard sim press --broker URL --device-id ID [--long] [--bounce N] [--timeout S]
    careguard sim fleet --gateways N --broker URL [--broker URL2 ...] [--credentials CSV] [--duration S]
    careguard sim zigbee2mqtt --broker URL --device "class1/sos=sos" [--device NAME=KIND ...]
    careguard sim zigbee2mqtt-click --broker URL --friendly-name NAME [--action single]

A broker that wants logins takes them in the URL (mqtt://user:pass@host:port), as --username and
--password, or (device, press) as --credentials FILE: the secrets.json `careguard edge provision`
writes, where a device's login is its device id.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from typing import Callable

from pydantic import ValidationError

from contracts.errors import describe_validation_error
from firmware_sim.button import Button
from firmware_sim.camera import add_camera_commands, run_camera_command
from firmware_sim.fleet import add_fleet_command, run_fleet_command
from firmware_sim.scenarios import add_scenario_command, run_scenario
from firmware_sim.device_io import SIMULATED_KINDS, BrokerUnreachable, DeviceLink, DeviceSpec, SensorFleet
from firmware_sim.sensors import FaultKind
from firmware_sim.zigbee2mqtt import DEFAULT_BASE_TOPIC, Z2MKind, Zigbee2MqttBridge, publish_click

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"

log = logging.getLogger("careguard.sim")


def _add_login(p: argparse.ArgumentParser, *, credentials_file: bool) -> None:
    p.add_argument("--username", help="broker login (default: from the URL; the device id with --credentials)")
    p.add_argument("--password", help="broker password (or in the URL)")
    if credentials_file:
        p.add_argument("--credentials", metavar="FILE",
                       help="secrets.json written by `careguard edge provision`: the device's own login")


def _login(args: argparse.Namespace, device_id: str | None = None) -> tuple[str | None, str | None]:
    """(username, password) from the options; (None, None) leaves the URL's."""
    if getattr(args, "credentials", None):
        try:
            users = json.loads(open(args.credentials, encoding="utf-8").read())["users"]
            password = users[args.username or device_id]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"--credentials {args.credentials}: no login for {args.username or device_id!r} "
                             f"({type(exc).__name__}: {exc})") from None
        return args.username or device_id, password
    if args.password is not None and args.username is None and device_id is None:
        raise ValueError("--password needs --username")
    if args.username is None and args.password is None:
        return None, None
    return args.username or device_id, args.password


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sim_command", required=True,
                                metavar="{device,press,zigbee2mqtt,zigbee2mqtt-click,camera,clip,scenario,fleet}")

    dev = sub.add_parser("device", help="run one simulated device until Ctrl-C/SIGTERM or --duration")
    dev.add_argument("--broker", default=DEFAULT_BROKER, help=f"gateway's local broker (default {DEFAULT_BROKER})")
    dev.add_argument("--device-id", required=True)
    dev.add_argument("--kind", required=True, choices=sorted(k.value for k in SIMULATED_KINDS))
    dev.add_argument("--interval", type=float, default=10.0,
                     help="seconds between readings, or between heartbeats for button/door/pir/smoke (default 10)")
    dev.add_argument("--fault", choices=[f.value for f in FaultKind], help="inject a sensor fault")
    dev.add_argument("--fault-after", type=float, default=0.0, metavar="S",
                     help="start the fault S seconds after start-up (default: at once)")
    dev.add_argument("--drift-per-hour", type=float, help="rate of the drift fault (default per metric)")
    dev.add_argument("--fault-value", type=float, help="value of the stuck/out_of_range fault (default per metric)")
    dev.add_argument("--seed", type=int, default=0, help="noise and event schedule seed (default 0)")
    dev.add_argument("--battery", type=float, default=100.0, help="battery level reported, percent (default 100)")
    dev.add_argument("--duration", type=float, help="stop after S seconds (default: run until stopped)")
    dev.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker (default 5)")
    _add_login(dev, credentials_file=True)

    press = sub.add_parser("press", help="press a button once; exits 0 once the broker has the press")
    press.add_argument("--broker", default=DEFAULT_BROKER, help=f"gateway's local broker (default {DEFAULT_BROKER})")
    press.add_argument("--device-id", required=True)
    press.add_argument("--long", action="store_true", help="a long press (reported as long_press)")
    press.add_argument("--bounce", type=int, default=1, metavar="N",
                       help="contact bounce: N press events a few ms apart, each with its own id (default 1)")
    press.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker (default 5)")
    _add_login(press, credentials_file=True)

    z2m = sub.add_parser("zigbee2mqtt", help="run a simulated Zigbee2MQTT bridge and its devices until stopped")
    z2m.add_argument("--broker", default=DEFAULT_BROKER, help=f"gateway's local broker (default {DEFAULT_BROKER})")
    z2m.add_argument("--device", action="append", required=True, metavar="NAME=KIND",
                     help=f"a paired device: friendly_name=kind, kind one of {', '.join(k.value for k in Z2MKind)}")
    z2m.add_argument("--base-topic", default=DEFAULT_BASE_TOPIC, help=f"mqtt.base_topic (default {DEFAULT_BASE_TOPIC})")
    z2m.add_argument("--json-availability", action="store_true",
                     help='availability as {"state":"online"} (legacy_availability_payload: false)')
    z2m.add_argument("--report", type=float, default=60.0, help="seconds between climate reports (default 60)")
    z2m.add_argument("--duration", type=float, help="stop after S seconds (default: run until stopped)")
    z2m.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker (default 5)")
    _add_login(z2m, credentials_file=False)

    click = sub.add_parser("zigbee2mqtt-click", help="one action of a Zigbee2MQTT device (a click), as its bridge sends it")
    click.add_argument("--broker", default=DEFAULT_BROKER, help=f"gateway's local broker (default {DEFAULT_BROKER})")
    click.add_argument("--friendly-name", required=True)
    click.add_argument("--action", default="single", help="single, double, hold, emergency... (default single)")
    click.add_argument("--base-topic", default=DEFAULT_BASE_TOPIC, help=f"mqtt.base_topic (default {DEFAULT_BASE_TOPIC})")
    click.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker (default 5)")
    _add_login(click, credentials_file=False)

    add_camera_commands(sub)
    add_scenario_command(sub)
    add_fleet_command(sub)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "camera_command", None):
        return run_camera_command(args)
    if args.sim_command == "scenario":
        return run_scenario(args)
    if args.sim_command == "press":
        return _press(args)
    if args.sim_command == "fleet":
        return run_fleet_command(args)
    if args.sim_command == "zigbee2mqtt":
        return _zigbee2mqtt(args)
    if args.sim_command == "zigbee2mqtt-click":
        return _zigbee2mqtt_click(args)
    return _device(args)


def _fail(message: str, code: int = 1) -> int:
    print(f"careguard sim: {message}", file=sys.stderr)
    return code


def _press(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        return _fail(f"--timeout must be > 0, got {args.timeout}", 2)
    deadline = time.monotonic() + args.timeout
    try:
        username, password = _login(args, args.device_id)
        # No status: this one-shot must not mark the device online or offline.
        link = DeviceLink(args.broker, args.device_id, announce_status=False, username=username,
                          password=password).connect(args.timeout)
    except ValueError as exc:
        return _fail(str(exc), 2)
    except BrokerUnreachable as exc:
        return _fail(f"press not sent: {exc}")
    try:
        result = Button(link).press(long=args.long, bounce=args.bounce,
                                    timeout=max(deadline - time.monotonic(), 0.1))
    except ValueError as exc:
        return _fail(str(exc), 2)
    except TimeoutError as exc:
        return _fail(f"press not confirmed: {exc}")
    finally:
        link.close()
    print(json.dumps({"id": result.id, "ts": result.events[0].model_dump(mode="json")["ts"],
                      "device_id": result.device_id}), flush=True)
    return 0


def _device(args: argparse.Namespace) -> int:
    fault_later = args.fault is not None and args.fault_after > 0
    try:
        username, password = _login(args, args.device_id)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        spec = DeviceSpec(device_id=args.device_id, kind=args.kind, interval_s=args.interval, seed=args.seed,
                          fault=None if fault_later else args.fault, drift_per_hour=args.drift_per_hour,
                          fault_value=args.fault_value, battery_pct=args.battery, username=username,
                          password=password)
        if fault_later:
            DeviceSpec(device_id=args.device_id, kind=args.kind, fault=args.fault)  # refuse a misfit now, not later
    except ValidationError as exc:
        return _fail(f"bad device options: {describe_validation_error(exc)}", 2)

    try:
        fleet = SensorFleet(args.broker, [spec], connect_timeout=args.timeout).start()
    except BrokerUnreachable as exc:
        return _fail(str(exc))
    except ValueError as exc:
        return _fail(str(exc), 2)
    log.info("%s %s online", spec.kind.value, spec.device_id)

    def inject_fault() -> None:
        fleet.set_fault(spec.device_id, args.fault, drift_per_hour=args.drift_per_hour, value=args.fault_value)
        log.info("%s: fault %s injected", spec.device_id, args.fault)

    try:
        _run_until_stopped(args.duration, [(args.fault_after, inject_fault)] if fault_later else [])
    finally:
        fleet.stop()
    return 0


def _run_until_stopped(duration: float | None, later: list[tuple[float, Callable[[], None]]]) -> None:
    """Block until SIGTERM/SIGINT or `duration` s, running each (delay, action) of `later` on time."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    pending = sorted(((started + delay, action) for delay, action in later), key=lambda p: p[0])
    end_at = None if duration is None else started + duration
    try:
        while not stop.is_set():
            now = time.monotonic()
            if end_at is not None and now >= end_at:
                break
            while pending and now >= pending[0][0]:
                pending.pop(0)[1]()
            # Waits of at most 1 s keep the loop responsive to signals whatever the platform.
            stop.wait(min([t - now for t in (end_at, *(p[0] for p in pending[:1])) if t is not None] + [1.0]))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _zigbee2mqtt(args: argparse.Namespace) -> int:
    try:
        username, password = _login(args)
        devices = []
        for item in args.device:
            name, sep, kind = item.rpartition("=")
            if not sep or not name:
                raise ValueError(f"--device {item!r}: expected friendly_name=kind")
            devices.append({"friendly_name": name, "kind": kind, "report_s": args.report, "seed": len(devices)})
        bridge = Zigbee2MqttBridge(args.broker, devices, base_topic=args.base_topic,
                                   json_availability=args.json_availability, username=username, password=password)
    except ValidationError as exc:
        return _fail(f"bad device options: {describe_validation_error(exc)}", 2)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        bridge.start(args.timeout)
    except BrokerUnreachable as exc:
        return _fail(str(exc))
    log.info("zigbee2mqtt bridge online with %d devices under %s/", len(devices), args.base_topic)
    try:
        _run_until_stopped(args.duration, [])
    finally:
        bridge.stop()
    return 0


def _zigbee2mqtt_click(args: argparse.Namespace) -> int:
    try:
        username, password = _login(args)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        message = publish_click(args.broker, args.friendly_name, args.action, base_topic=args.base_topic,
                                username=username, password=password, timeout=args.timeout)
    except BrokerUnreachable as exc:
        return _fail(f"click not sent: {exc}")
    except TimeoutError as exc:
        return _fail(f"click not confirmed: {exc}")
    print(json.dumps({"topic": f"{args.base_topic}/{args.friendly_name}", "payload": message}), flush=True)
    return 0

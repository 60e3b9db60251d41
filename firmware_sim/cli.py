"""`careguard sim`: run a simulated device, or press a simulated button once.

    careguard sim device --broker URL --device-id ID --kind co2 [--interval S] [--fault drift] ...
    careguard sim press --broker URL --device-id ID [--long] [--bounce N] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

from pydantic import ValidationError

from contracts.errors import describe_validation_error
from firmware_sim.button import Button
from firmware_sim.camera import add_camera_commands, run_camera_command
from firmware_sim.device_io import SIMULATED_KINDS, BrokerUnreachable, DeviceLink, DeviceSpec, SensorFleet
from firmware_sim.sensors import FaultKind

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"

log = logging.getLogger("careguard.sim")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sim_command", required=True, metavar="{device,press,camera,clip}")

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

    press = sub.add_parser("press", help="press a button once; exits 0 once the broker has the press")
    press.add_argument("--broker", default=DEFAULT_BROKER, help=f"gateway's local broker (default {DEFAULT_BROKER})")
    press.add_argument("--device-id", required=True)
    press.add_argument("--long", action="store_true", help="a long press (reported as long_press)")
    press.add_argument("--bounce", type=int, default=1, metavar="N",
                       help="contact bounce: N press events a few ms apart, each with its own id (default 1)")
    press.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker (default 5)")

    add_camera_commands(sub)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "camera_command", None):
        return run_camera_command(args)
    if args.sim_command == "press":
        return _press(args)
    return _device(args)


def _fail(message: str, code: int = 1) -> int:
    print(f"careguard sim: {message}", file=sys.stderr)
    return code


def _press(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        return _fail(f"--timeout must be > 0, got {args.timeout}", 2)
    deadline = time.monotonic() + args.timeout
    try:
        # No status: this one-shot must not mark the device online or offline.
        link = DeviceLink(args.broker, args.device_id, announce_status=False).connect(args.timeout)
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
        spec = DeviceSpec(device_id=args.device_id, kind=args.kind, interval_s=args.interval, seed=args.seed,
                          fault=None if fault_later else args.fault, drift_per_hour=args.drift_per_hour,
                          fault_value=args.fault_value, battery_pct=args.battery)
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
    log.info("%s %s online at %s", spec.kind.value, spec.device_id, args.broker)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    fault_at = started + args.fault_after if fault_later else None
    end_at = None if args.duration is None else started + args.duration
    try:
        while not stop.is_set():
            now = time.monotonic()
            if end_at is not None and now >= end_at:
                break
            if fault_at is not None and now >= fault_at:
                fleet.set_fault(spec.device_id, args.fault, drift_per_hour=args.drift_per_hour, value=args.fault_value)
                log.info("%s: fault %s injected", spec.device_id, args.fault)
                fault_at = None
            # Waits of at most 1 s keep the loop responsive to signals whatever the platform.
            stop.wait(min([t - now for t in (end_at, fault_at) if t is not None] + [1.0]))
    finally:
        fleet.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0

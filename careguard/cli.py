"""The `careguard` command. Each subcommand lives in its own module, imported only when used
(so `careguard sim press` does not pay for OpenCV or FastAPI).

A subcommand module defines `configure(parser: argparse.ArgumentParser)` and
`main(args) -> int`."""

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("careguard.run_all", "start the whole system on embedded defaults"),
    "edge": ("edge.agent", "run a facility gateway's edge agent"),
    "arc": ("arc.receiver", "run the police alarm centre's DC-09 receiver"),
    "cloud": ("cloud.main", "run the supervision cloud (ingest, API, dashboards)"),
    "sim": ("firmware_sim.cli", "simulated devices: buttons, sensors, cameras"),
    "camera-check": ("edge.video.check", "analyse a video file or URL for camera faults"),
    "retention-check": ("edge.retention.cli", "audit a recordings folder for retention"),
}
# `careguard <command> <subcommand>`, for a command whose plain form runs something else.
SUBCOMMANDS: dict[tuple[str, str], tuple[str, str]] = {
    ("edge", "provision"): ("edge.broker_auth", "write the local broker's device logins, password file and ACL"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: careguard <command> [options]\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:16} {help_}")
        for (name, sub), (_, help_) in SUBCOMMANDS.items():
            print(f"  {name + ' ' + sub:16} {help_}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\ncareguard: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    name, rest = argv[0], argv[1:]
    module_name, description = COMMANDS[name]
    if rest and (name, rest[0]) in SUBCOMMANDS:
        module_name, description = SUBCOMMANDS[(name, rest[0])]
        name, rest = f"{name} {rest[0]}", rest[1:]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"careguard {name}", description=description)
    module.configure(parser)
    args = parser.parse_args(rest)
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

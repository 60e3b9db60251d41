"""Devices authenticate to the gateway's local broker: one login per device, and an ACL that lets
each publish only its own topics, so that a phone on the facility Wi-Fi can neither learn the
button ids by subscribing to `#` nor press a button (a false panic to the police).

`careguard edge provision --config FILE [--rotate [USER ...]]` writes into `device_auth.dir`:
- `secrets.json` (mode 0600): every login's password, kept across runs, so provisioning again
  changes no credential unless asked to rotate;
- `passwd`: Mosquitto's password file (PBKDF2-SHA512 in its `$7$` format);
- `acl`: Mosquitto's ACL file;
and prints the credentials it issued (new or rotated) once. Mosquitto rereads both files on
SIGHUP. The embedded broker of `make run` takes the same users (careguard/embedded_broker.py).

Logins: the edge agent reads every device topic and writes device commands; a device writes
`cg/dev/{device_id}/event|telemetry|status` and reads its `cmd`; Zigbee2MQTT's bridge has
`{base_topic}/#`; a device of another bridge writes the topics its mapping reads."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import quote, urlparse, urlunparse

from edge.config import ConfigError, DeviceAuthConfig, EdgeConfig, load_config

SECRETS_FILE = "secrets.json"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
# Mosquitto's own default. The passwords are random (144 bits), so stretching adds nothing against
# guessing them, while every CONNECT pays for it: a flood of logins would cost the gateway's CPU.
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
PASSWORD_BYTES = 18
# Letters and digits only: a password starting with '-' would read as an option on a command line.
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class BrokerUser:
    username: str
    role: str                 # edge, bridge or device: what the login is for
    write: tuple[str, ...]    # topic filters it may publish on
    read: tuple[str, ...]     # topic filters it may subscribe to


def new_password() -> str:
    """A random password of about PASSWORD_BYTES * 8 bits, safe to pass as a command-line argument."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_BYTES * 4 // 3))


def auth_config(cfg: EdgeConfig) -> DeviceAuthConfig:
    return cfg.device_auth or DeviceAuthConfig()


def broker_users(cfg: EdgeConfig) -> list[BrokerUser]:
    """Every login the local broker needs for `cfg`, with what each may touch."""
    auth = auth_config(cfg)
    z2m = cfg.zigbee2mqtt
    z2m_all = (f"{z2m.base_topic}/#",) if z2m.devices else ()
    generic_reads = tuple(dict.fromkeys(t for m in cfg.mqtt_devices for t in (m.topic, m.availability_topic) if t))
    users = [BrokerUser(auth.edge_username, "edge", write=("cg/dev/+/cmd",),
                        read=("cg/dev/+/event", "cg/dev/+/telemetry", "cg/dev/+/status", *z2m_all, *generic_reads))]
    if z2m.devices:
        users.append(BrokerUser(auth.bridge_username, "bridge", write=z2m_all, read=z2m_all))
    for d in sorted(cfg.native_devices()):
        users.append(BrokerUser(d, "device", write=(f"cg/dev/{d}/event", f"cg/dev/{d}/telemetry", f"cg/dev/{d}/status"),
                                read=(f"cg/dev/{d}/cmd",)))
    generic: dict[str, list[str]] = {}
    for m in cfg.mqtt_devices:
        generic.setdefault(m.device_id, []).extend(t for t in (m.topic, m.availability_topic) if t)
    for d, written in sorted(generic.items()):
        users.append(BrokerUser(d, "device", write=tuple(dict.fromkeys(written)), read=()))
    return users


def mosquitto_hash(password: str, salt: Optional[bytes] = None, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """A password line's hash as `mosquitto_passwd` writes it: `$7$iterations$salt$PBKDF2-SHA512` (base64)."""
    salt = salt if salt is not None else os.urandom(MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def mosquitto_acl(users: Iterable[BrokerUser], facility_id: str) -> str:
    lines = [f"# Written by `careguard edge provision` for facility {facility_id}: each login may publish",
             "# only its own topics. Anything not listed is denied."]
    for u in users:
        lines += ["", f"# {u.role}", f"user {u.username}"]
        lines += [f"topic read {t}" for t in u.read if t not in u.write]
        lines += [f"topic {'readwrite' if t in u.read else 'write'} {t}" for t in u.write]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str, mode: int) -> None:
    """Replace `path` atomically with `text`, never readable beyond `mode`, even for a moment."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_secrets(directory: Path) -> dict[str, str]:
    """The passwords provisioning issued, by username ({} before the first run)."""
    path = directory / SECRETS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable credentials: {exc}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise ConfigError(f"{path}: expected {{\"users\": {{username: password}}}}")
    return users


@dataclass
class Provisioned:
    users: list[BrokerUser]
    passwords: dict[str, str]
    issued: dict[str, str]   # new or rotated this run: shown once
    directory: Path


def provision(cfg: EdgeConfig, rotate: Optional[Iterable[str]] = None) -> Provisioned:
    """Write the credentials, Mosquitto's password file and ACL for `cfg`'s devices into its
    `device_auth.dir` (where the agent reads its own login). `rotate`: usernames to issue new
    passwords to (an empty iterable: all of them)."""
    directory = Path(auth_config(cfg).dir)
    directory.mkdir(parents=True, exist_ok=True)
    users = broker_users(cfg)
    names = {u.username for u in users}
    to_rotate = None if rotate is None else set(rotate)
    if to_rotate and to_rotate - names:
        raise ConfigError(f"--rotate: no login {sorted(to_rotate - names)[0]!r} in this configuration")
    if to_rotate == set():
        to_rotate = names
    old = load_secrets(directory)
    passwords: dict[str, str] = {}
    issued: dict[str, str] = {}
    for u in users:
        if u.username in old and u.username not in (to_rotate or ()):
            passwords[u.username] = old[u.username]
        else:
            passwords[u.username] = issued[u.username] = new_password()
    _write_private(directory / SECRETS_FILE, json.dumps({"users": passwords}, indent=1, sort_keys=True) + "\n", 0o600)
    # The broker reads these after dropping to its own user: group-readable (chgrp mosquitto).
    _write_private(directory / PASSWORD_FILE,
                   "".join(f"{u.username}:{mosquitto_hash(passwords[u.username])}\n" for u in users), 0o640)
    _write_private(directory / ACL_FILE, mosquitto_acl(users, cfg.facility_id), 0o640)
    return Provisioned(users, passwords, issued, directory)


def with_credentials(url: str, username: str, password: str) -> str:
    u = urlparse(url)
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{u.hostname}" + (f":{u.port}" if u.port else "")
    return urlunparse(u._replace(netloc=netloc))


def local_broker_url(cfg: EdgeConfig) -> str:
    """The agent's local broker URL, with its provisioned login when devices authenticate
    (credentials written in the URL itself take precedence)."""
    if cfg.device_auth is None or urlparse(cfg.local_broker).username:
        return cfg.local_broker
    password = load_secrets(cfg.device_auth.dir).get(cfg.device_auth.edge_username)
    if password is None:
        raise ConfigError(f"device_auth: no credentials for {cfg.device_auth.edge_username!r} in "
                          f"{cfg.device_auth.dir / SECRETS_FILE}: run `careguard edge provision --config ...` first")
    return with_credentials(cfg.local_broker, cfg.device_auth.edge_username, password)


# --- `careguard edge provision` -------------------------------------------------------------
_USE = {"edge": "the edge agent reads it from the secrets file",
        "bridge": "Zigbee2MQTT: mqtt.user / mqtt.password in its configuration.yaml",
        "device": "the device's MQTT username / password"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the gateway's TOML configuration")
    parser.add_argument("--rotate", nargs="*", metavar="USER",
                        help="issue new passwords to these logins (none named: to every login)")


def main(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        done = provision(cfg, args.rotate)
    except ConfigError as exc:
        print(f"careguard edge provision: {exc}", file=sys.stderr)
        return 2
    d = done.directory
    print(f"facility {cfg.facility_id}: {len(done.users)} logins for the local broker in {d}/")
    if done.issued:
        print("credentials issued (shown this once; give each to its device):")
        width = max(len(u) for u in done.issued)
        for u in done.users:
            if u.username in done.issued:
                print(f"  {u.username:{width}}  {done.issued[u.username]}   ({_USE[u.role]})")
    unchanged = len(done.users) - len(done.issued)
    if unchanged:
        print(f"unchanged: {unchanged} (--rotate USER issues a new password)")
    print(f"Mosquitto: password_file {d / PASSWORD_FILE}, acl_file {d / ACL_FILE}, allow_anonymous false "
          f"(reload with SIGHUP)")
    return 0

"""Real local services (Mosquitto, PostgreSQL, VictoriaMetrics) started on free loopback
ports, for tests and benchmarks. Each is a context manager that stops what it started."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s")


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run `make test` (installs Debian packages as root)")
    return path


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the broker's certificate and key, the CA its clients' certificates must
    come from, and the CRL it checks them against. With `require_certificate`, a client without
    a certificate from `cafile` is refused; `use_identity_as_username` makes the certificate's
    common name the username the ACL applies to (no password)."""
    cafile: str
    certfile: str
    keyfile: str
    crlfile: Optional[str] = None
    require_certificate: bool = True
    use_identity_as_username: bool = True


class Mosquitto:
    """A Mosquitto broker on loopback, with the settings DESIGN.md asks for (nodelay, deep queues).

    `acl` maps a username to its (password, [ACL lines]); `auth_files` is a (password file, ACL
    file) pair written elsewhere (`careguard edge provision`); without either, anonymous access.
    With `tls`, its one listener speaks TLS only (a plain connection is refused); with
    `use_identity_as_username`, `acl` passwords are unused."""

    def __init__(self, port: int | None = None, *, acl: dict[str, tuple[str, list[str]]] | None = None,
                 auth_files: tuple[Path, Path] | None = None, max_queued: int = 1_000_000, persistence: bool = True,
                 workdir: str | None = None, tls: BrokerTls | None = None):
        self.port = port or free_port()
        self.tls = tls
        self.acl = acl
        self.auth_files = auth_files
        self.max_queued = max_queued
        self.persistence = persistence
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="cg-mosq-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"mqtts://{LOOPBACK}:{self.port}?cafile={self.tls.cafile}"
        return f"mqtt://{LOOPBACK}:{self.port}"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {LOOPBACK}",
            "set_tcp_nodelay true",
            f"max_queued_messages {self.max_queued}",
            "max_inflight_messages 1000",
            "max_packet_size 1048576",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            # As root Mosquitto drops to the `mosquitto` user, which cannot write a persistence
            # file into a root-owned temporary folder: sessions would silently not survive a restart.
            lines.append("user root")
        if self.tls is not None:
            t = self.tls
            lines += [f"cafile {t.cafile}", f"certfile {t.certfile}", f"keyfile {t.keyfile}", "tls_version tlsv1.2",
                      f"require_certificate {'true' if t.require_certificate else 'false'}",
                      f"use_identity_as_username {'true' if t.use_identity_as_username else 'false'}"]
            if t.crlfile:
                lines.append(f"crlfile {t.crlfile}")
        if self.auth_files is not None:
            lines += ["allow_anonymous false", f"password_file {self.auth_files[0]}", f"acl_file {self.auth_files[1]}"]
        elif self.acl is None:
            lines.append("allow_anonymous true")
        else:
            acl_file = self.dir / "acl"
            acl_file.write_text("".join(f"user {u}\n" + "".join(f"{r}\n" for r in rules) + "\n"
                                        for u, (_, rules) in self.acl.items()))
            lines += ["allow_anonymous false", f"acl_file {acl_file}"]
            if self.tls is None or not self.tls.use_identity_as_username:
                pw_file = self.dir / "passwd"
                pw_file.write_text("".join(f"{u}:{p}\n" for u, (p, _) in self.acl.items()))
                pw_file.chmod(0o600)
                subprocess.run([_require("mosquitto_passwd"), "-U", str(pw_file)], check=True, capture_output=True)
                lines.append(f"password_file {pw_file}")
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> "Mosquitto":
        conf = self._write_config()
        self.log = open(self.dir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([_require("mosquitto"), "-c", str(conf)], stdout=self.log, stderr=self.log)
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
            self.log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its configuration, ACL, passwords and CRL again, keeping its clients."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make test` (installs Debian packages as root)")
    return found[-1]


@contextmanager
def postgres(*, durable: bool = False) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields a SQLAlchemy URL.

    `durable`: fsync, full page writes and synchronous commit on, as a production server runs
    (benchmarks); otherwise off, which is faster and enough for tests of behaviour.
    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="cg-pg-"))
    data = root / "data"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
    subprocess.run(prefix + [_pg_bin("initdb"), "-D", str(data), "-U", "careguard", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    log = root / "pg.log"
    on = "on" if durable else "off"
    proc = subprocess.Popen(prefix + [_pg_bin("postgres"), "-D", str(data), "-p", str(port), "-h", LOOPBACK,
                                      "-k", str(root), "-c", f"fsync={on}", "-c", f"full_page_writes={on}",
                                      "-c", f"synchronous_commit={on}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        deadline = time.monotonic() + 15
        while True:
            r = subprocess.run([_pg_bin("createdb"), "-h", LOOPBACK, "-p", str(port), "-U", "careguard", "careguard"],
                               capture_output=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {r.stderr.decode()}")
            time.sleep(0.2)
        yield f"postgresql+psycopg://careguard@{LOOPBACK}:{port}/careguard"
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def victoria_metrics() -> Iterator[str]:
    """VictoriaMetrics on a free loopback port; yields its base URL (it serves /api/v2/write)."""
    port = free_port()
    root = tempfile.mkdtemp(prefix="cg-vm-")
    proc = subprocess.Popen([_require("victoria-metrics"), f"-httpListenAddr={LOOPBACK}:{port}",
                             f"-storageDataPath={root}", "-retentionPeriod=100y", "-search.latencyOffset=0s",
                             "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        base = f"http://{LOOPBACK}:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _port_taken(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


class Sipp:
    """SIPp (Debian `sip-tester`) playing a scenario on a loopback port, as the peer a test or a
    benchmark talks to (the police video platform for GB/T 28181); restartable on the same port.
    Every message it sends and receives goes to its message log, read back by `messages()`.

    `keys` fill the scenario's [name] keywords, `variables` its $variables (-set)."""

    def __init__(self, scenario: str | Path, workdir: str | Path, *, transport: str = "udp",
                 port: int | None = None, keys: dict[str, str] | None = None,
                 variables: dict[str, str] | None = None):
        self.scenario = Path(scenario)
        self.dir = Path(workdir)
        self.transport = transport
        self.kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.port = port or free_port()
        self.keys = keys or {}
        self.variables = variables or {}
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    @property
    def message_log(self) -> Path:
        return self.dir / f"sipp-{self.runs}-messages.log"

    def start(self) -> "Sipp":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        cmd = [_require("sipp"), "-sf", str(self.scenario), "-i", LOOPBACK, "-p", str(self.port),
               "-t", "u1" if self.transport == "udp" else "t1", "-nostdin", "-deadcall_wait", "0",
               "-trace_msg", "-message_file", str(self.message_log),
               "-trace_err", "-error_file", str(self.dir / f"sipp-{self.runs}-errors.log")]
        for k, v in self.keys.items():
            cmd += ["-key", k, v]
        for k, v in self.variables.items():
            cmd += ["-set", k, v]
        self.out = open(self.dir / f"sipp-{self.runs}.out", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not _port_taken(self.port, self.kind):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited with {self.proc.returncode}: "
                                   + (self.dir / f"sipp-{self.runs}.out").read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp not on port {self.port} after 15 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
            self.out.close()

    def messages(self, run: int | None = None) -> list[tuple[str, bytes]]:
        """("sent" | "received", message bytes) in the order SIPp logged them, for one run (the latest
        by default; complete once stopped)."""
        return [(direction, raw) for _, direction, raw in self.timed_messages(run)]

    def timed_messages(self, run: int | None = None) -> list[tuple[float, str, bytes]]:
        """As `messages`, each with the epoch time SIPp logged it at (its own clock, this machine's)."""
        path = self.dir / f"sipp-{run or self.runs}-messages.log"
        if not path.exists():
            return []
        out = []
        for block in (b"\n" + path.read_bytes()).split(b"\n-----------------------------------------------")[1:]:
            stamp, _, rest = block.partition(b"\n")
            head, _, message = rest.partition(b"\n")  # "UDP message sent (346 bytes):"
            when = datetime.strptime(stamp.decode().strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((when, "sent" if b"message sent" in head else "received", message.strip(b"\r\n")))
        return out

    def __enter__(self) -> "Sipp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

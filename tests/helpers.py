"""What several test modules need and is not a fixture: throwaway stores, bounded polling, and
Chromium logged in to a dashboard. Imported as `helpers` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator

import sqlalchemy as sa

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextmanager
def store_engine(request, sqlite_dir: Path, prefix: str) -> Iterator[sa.engine.Engine]:
    """A migrated cloud store for a fixture parametrised like `store_url`, disposed afterwards."""
    from cloud.store.db import create_schema, make_engine

    with store_url(request, sqlite_dir, prefix) as url:
        engine = make_engine(url)
        create_schema(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def now_ms() -> datetime:
    """Now at the milliseconds envelopes carry."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@contextmanager
def fresh_pg_database(pg_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database beside `pg_url`'s, dropped afterwards even if still in use."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@contextmanager
def store_url(request, sqlite_dir: Path, prefix: str) -> Iterator[str]:
    """For a fixture parametrised over "sqlite" and "postgresql": a SQLite file in `sqlite_dir`,
    or a fresh database in the session's PostgreSQL (the `pg_url` fixture)."""
    if request.param == "sqlite":
        yield f"sqlite:///{sqlite_dir / 'cloud.db'}"
        return
    with fresh_pg_database(request.getfixturevalue("pg_url"), prefix) as url:
        yield url


async def until(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.05) -> bool:
    """Whether `predicate()` comes true within about `timeout` s, asking every `step` s without
    holding up the event loop."""
    for _ in range(int(timeout / step)):
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def sync_until(predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.05) -> bool:
    """`until` for plain threads: blocks the caller between the questions."""
    tick = threading.Event()
    for _ in range(int(timeout / step)):
        if predicate():
            return True
        tick.wait(step)
    return bool(predicate())


@contextmanager
def chromium():
    """Debian's Chromium under Playwright, closed when the block ends."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def logged_in_page(browser, url: str, token: str, **page_options):
    """A new page (`page_options` go to `new_page`) at a dashboard `url`, past its token login;
    and the list that collects the page's console errors and uncaught exceptions."""
    page = browser.new_page(**page_options)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.get_by_label("访问令牌", exact=True).fill(token)
    page.get_by_role("button", name="进入").click()
    return page, errors


@asynccontextmanager
async def police_and_agent(make_config: Callable[[int], dict], account: str, key: str | None,
                           hits: list) -> AsyncIterator:
    """A police receiver recording into `hits` (the account encrypted with `key` unless None), and
    an edge agent built from `make_config(receiver_port)` reporting to it, subscribed to its
    devices; both stopped after."""
    from arc.receiver import ArcAccount, ArcReceiver
    from edge.agent import EdgeAgent
    from edge.config import parse_config
    arc = ArcReceiver({account: ArcAccount(key=key, plaintext=key is None)}, on_alarm=hits.append)
    await arc.start()
    agent = EdgeAgent(parse_config(make_config(arc.port)))
    try:
        await agent.start()
        await asyncio.wait_for(agent.devices.connected.wait(), 15)
        yield agent
    finally:
        await agent.stop()
        await arc.close()


def all_journaled_delivered(agent, collector) -> bool:
    """Whether everything the edge agent put in its outbox has been acknowledged by the broker and
    reached `collector` (a barrier: after it, nothing more from before it can still arrive). Call
    it on the agent's loop (its journal connection belongs there)."""
    import json
    ids = {json.loads(p)["id"] for (p,) in agent.journal.conn.execute("SELECT payload FROM outbox")}
    return agent.journal.outbox.count() == 0 and ids <= collector.distinct()

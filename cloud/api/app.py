"""The FastAPI application: API routers per resource, the dashboards and their static files,
behind a request body limit and security headers (cloud.api.hardening). The OpenAPI document
is for admins only (no /docs page: it would need inline script): it maps every route an attacker
could try."""

from __future__ import annotations

from typing import Annotated, Callable, Optional

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from cloud.alarms.downlink import Downlink
from cloud.alarms.events_bus import EventBus
from cloud.api import (
    alarms,
    audit,
    cameras,
    care,
    commands,
    compliance,
    credit,
    dashboard,
    devices,
    environment,
    facilities,
    fees,
    filings,
    findings,
    gateways,
    incidents,
    inspections,
    notices,
    public,
    reports,
    staff,
    statistics,
    subsidies,
    tokens as token_routes,
    uploads,
    video,
)
from cloud.api.auth import Principal, StreamTickets, TokenTable, require_role
from cloud.api.hardening import BodyLimit, SecurityHeaders
from cloud.api.common import ERROR_RESPONSES
from cloud.config import Role
from cloud.ingest.counters import merge_counters
from cloud.store.paging import BadCursor
from cloud.supervision.uploads import MAX_UPLOAD_BYTES
from cloud.video.live import LiveHub
from cloud.store.telemetry import RelationalTelemetryStore, TelemetryStore
from dashboards import PAGES, STATIC_DIR, render_page


class Health(BaseModel):
    status: str


class IngestStats(BaseModel):
    received: int
    stored: int
    duplicates: int
    rejected: int
    dead_lettered: int
    throttled: int
    store_errors: int
    batches: int
    alarm_updates: int
    telemetry_points: int
    expired: int = Field(description="envelopes of a pruned kind older than the retention: acknowledged, not stored")
    rejected_by_reason: dict[str, int]
    dead_lettered_by_facility: dict[str, int] = Field(description="since start, the facilities with the most")
    throttled_by_facility: dict[str, int] = Field(description="since start, the facilities with the most")


def _page(name: str) -> Callable[[], HTMLResponse]:
    def serve() -> HTMLResponse:
        return HTMLResponse(render_page(name), headers={"Cache-Control": "no-store"})
    return serve


def create_app(*, engine: Engine, bus: EventBus, tokens: TokenTable, downlink: Optional[Downlink] = None,
               ingest_counters: Optional[Callable[[], dict]] = None, live_hub: Optional[LiveHub] = None,
               notice_bus: Optional[EventBus] = None, max_body_bytes: int = 1024 * 1024,
               hsts: bool = False, telemetry: Optional[TelemetryStore] = None) -> FastAPI:
    app = FastAPI(title="CareGuard cloud", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders, hsts=hsts)
    # Added last, so it runs first: an oversized body is refused before anything else looks at it.
    # Uploads (inspection photos and documents) are the one route that needs more.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, larger={"/api/uploads": MAX_UPLOAD_BYTES})

    @app.exception_handler(BadCursor)
    def _bad_cursor(_request, exc: BadCursor) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": [{"loc": ["query", "cursor"], "msg": str(exc),
                                                                  "type": "value_error"}]})
    app.state.engine = engine
    app.state.bus = bus
    app.state.tokens = tokens
    app.state.stream_tickets = StreamTickets()
    app.state.downlink = downlink
    app.state.telemetry = telemetry or RelationalTelemetryStore()
    app.state.live_hub = live_hub
    # Supervision notices have their own bus: the alarm stream's subscribers never see them.
    app.state.notice_bus = notice_bus or EventBus()
    for router in (alarms.router, facilities.router, gateways.router, devices.router, cameras.router, staff.router,
                   compliance.router, audit.router, care.router, environment.router, statistics.router,
                   commands.router, dashboard.router, video.router, token_routes.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    for router in (uploads.router, inspections.router, findings.router, incidents.router, notices.router,
                   filings.router, fees.router, subsidies.router, reports.router, credit.router, public.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/police")

    for page in PAGES:
        app.add_api_route(f"/{page}", _page(page), include_in_schema=False)

    admin = Depends(require_role(Role.ADMIN))

    @app.get("/openapi.json", include_in_schema=False, dependencies=[admin])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/ingest/stats", response_model=IngestStats, responses=ERROR_RESPONSES)
    def ingest_stats(_who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> IngestStats:
        return IngestStats.model_validate(ingest_counters() if ingest_counters else merge_counters([]))

    return app

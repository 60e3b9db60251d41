// A facility's own page: gateway and police paths, zones with arming, cameras with health and
// retention, devices, its alarms, arming history, and the drill button (a `test` alarm).
"use strict";

(function () {
  const { $, t, kindName, el, button, api, qs, formatTime, fmtNumber } = CG;
  let facilityId = null;
  let poll = null;
  let tables = null;
  let status = null;
  let live = null;  // the cameras' live view buttons, kept across status refreshes
  let liveCameras = "";

  const yesNo = (v) => (v === null || v === undefined ? "—" : t(v ? "yes" : "no"));
  const tz = () => { const p = CG.placeOf(facilityId); return p ? p.timezone : CG.DEFAULT_ZONE; };
  const zoneName = (z) => CG.zoneLabel(facilityId, z);
  // A gateway's refusal worded in the page's language from its key (its English text where it sent none).
  const refusalText = (e) => {
    if (!e.refused) return "";
    const params = { ...(e.refused_params || {}) };
    if (params.zone) params.zone = zoneName(params.zone);
    return CG.findingText({ key: e.refused_key, params, message: e.refused });
  };
  const cameraName = (id) => { const p = CG.placeOf(facilityId); return (p && p.cameras[id]) || id; };

  function makeTables() {
    tables = {
      zones: new CG.Table($("zones"), { id: "zones-table", csvName: "zones.csv", load: () => null, label: "zonesTitle",
        empty: "emptyZones", columns: [
        { key: "zone", label: "colZone", csv: (z) => zoneName(z.zone), render: (z) => CG.named(zoneName(z.zone), z.zone) },
        { key: "latched", label: "latched", render: (z) => (z.latched ? kindName(z.latched) : "—") },
        { key: "armed", label: "armed", render: (z) => (z.armed === null ? "—" : t(z.armed ? "armed" : "disarmed")) },
        { key: "mode", label: "mode", render: (z) => CG.word("modes", z.mode) },
        { key: "actions", label: "colWorkflow", csv: () => "", render: (z) => el("span", { class: "workflow" },
          button(t("arm"), (ev) => command(ev.currentTarget, z.zone, "arm"), { class: "secondary", "aria-label": `${t("arm")}: ${zoneName(z.zone)}` }),
          button(t("disarm"), (ev) => command(ev.currentTarget, z.zone, "disarm"), { class: "secondary", "aria-label": `${t("disarm")}: ${zoneName(z.zone)}` })) },
      ] }),
      cameras: new CG.Table($("cameras"), { id: "cameras-table", csvName: "cameras.csv", load: () => null, label: "camerasTitle",
        empty: "emptyCameras", columns: [
        { key: "camera_id", label: "camera", csv: (c) => c.name, render: (c) => CG.named(c.name, c.camera_id) },
        { key: "online", label: "online", render: (c) => el("span", { class: c.online === false ? "bad" : (c.online ? "good" : null), text: yesNo(c.online) }) },
        { key: "state", label: "status", render: (c) => CG.word("cameraStates", c.state) },
        { key: "fault", label: "fault", render: (c) => (c.fault ? el("span", { class: "bad", text: CG.word("cameraFaults", c.fault) }) : "—") },
        { key: "camera_fps", label: "fps", num: true, render: (c) => fmtNumber(c.camera_fps, 1) },
        { key: "last_frame_age_s", label: "frameAge", num: true, render: (c) => fmtNumber(c.last_frame_age_s, 1) },
        { key: "connection_quality", label: "quality", num: true, render: (c) => fmtNumber(c.connection_quality, 2) },
        { key: "achieved_days", label: "achievedDays", num: true, render: (c) => fmtNumber(c.achieved_days, 1) },
        { key: "retention_compliant", label: "retention", render: (c) => el("span",
          { class: c.retention_compliant === false ? "bad" : null, text: yesNo(c.retention_compliant) }) },
        { key: "reported_at", label: "lastSeen", render: (c) => formatTime(c.reported_at, false, tz()) },
      ], rowAttrs: (c) => ({ class: c.fault || c.online === false ? "breach" : null }) }),
      devices: new CG.Table($("devices"), { id: "devices-table", csvName: "devices.csv", load: () => null, label: "devicesTitle",
        empty: "emptyDevices", columns: [
        { key: "name", label: "device", render: (d) => CG.named(d.name, d.device_id) },
        { key: "kind", label: "kind", render: (d) => CG.word("deviceKinds", d.kind) },
        { key: "zone", label: "colZone", render: (d) => zoneName(d.zone) }, { key: "active_alarms", label: "activeAlarms", num: true },
      ] }),
      events: new CG.Table($("events"), { id: "events-table", csvName: "arming-events.csv", load: () => null, label: "eventsTitle",
        empty: "emptyEvents", columns: [
        { key: "ts", label: "time", head: () => CG.withZone(t("time"), tz()), render: (e) => formatTime(e.ts, false, tz()) }, { key: "zone", label: "colZone", render: (e) => zoneName(e.zone) },
        { key: "armed", label: "armed", render: (e) => (e.type === "event.latch_reset" ? t("latched") + " ✕"
          : e.armed === null ? "—" : t(e.armed ? "armed" : "disarmed")) },
        { key: "mode", label: "mode", render: (e) => CG.word("modes", e.mode) }, { key: "by", label: "by" },
        { key: "refused", label: "refused", render: refusalText },
      ] }),
      alarms: new CG.Table($("alarms"), { id: "facility-alarms", csvName: "alarms.csv", label: "facilityAlarms",
        empty: "emptyRecent", columns: [
        { key: "raised_at", label: "colRaised", head: () => CG.withZone(t("colRaised"), tz()), render: (a) => formatTime(a.raised_at, true, tz()) },
        { key: "zone", label: "colZone", render: (a) => zoneName(a.zone || a.source) },
        { key: "kind", label: "colKind", render: (a) => (a.kind === "test" ? `${kindName(a.kind)} · ${t("drill")}` : kindName(a.kind)) },
        { key: "state", label: "colState", render: (a) => t(a.state) },
        { key: "delivery_ms", label: "colDeliveryMs", num: true },
        { key: "acked_by", label: "ackedBy" },
      ], rowAttrs: (a) => ({ dataset: { alarmId: a.alarm_id } }),
      load: (cursor) => api("GET", "/api/alarms" + qs({ facility: facilityId, limit: 20, before: cursor }))
        .then((p) => ({ items: p.items, next_cursor: p.next_before })) }),
    };
  }

  function renderStatus(s) {
    status = s;
    $("fac-name").textContent = s.name;
    $("fac-id").textContent = s.facility;
    $("gw-state").textContent = t(s.gateway_online ? "online" : "offlineState");
    $("gw-state").className = s.gateway_online ? "good" : "bad";
    $("gw-seen").textContent = `${t("lastSeen")}: ${formatTime(s.gateway_last_seen_at, false, tz())}（${CG.zoneName(tz())}）`;
    $("active-alarms").textContent = String(s.active_alarms);
    const r = s.retention;
    $("retention").textContent = r.cameras ? `${r.compliant} / ${r.cameras}` : t("noCameraData");
    $("retention-req").textContent = r.required_days ? `${t("requiredDays")}: ${t("daysRequired", { days: r.required_days })}` : "";
    const paths = Object.entries(s.police_paths);
    $("paths").textContent = paths.length ? paths.map(([n, up]) => `${n} ${t(up ? "pathUp" : "pathDown")}`).join(" · ") : t("noPaths");
    $("video-platform").textContent = CG.videoPlatformText(s.video_platform);
    $("video-platform").className = s.video_platform && s.video_platform.registered ? "good" : "bad";
    tables.zones.setItems(s.zones);
    tables.cameras.setItems(s.cameras);
    const cameras = s.cameras.map((c) => c.camera_id);
    if (cameras.join("\n") !== liveCameras) {
      if (live) live.stopAll();
      liveCameras = cameras.join("\n");
      live = CGScene.liveButtons($("camera-live"), s.facility, cameras);
      $("camera-live-buttons").replaceChildren(...live.buttons);
    }
    tables.devices.setItems(s.devices);
    tables.events.setItems(s.arming_events);
    const select = $("drill-zone");
    const chosen = select.value;
    const zones = s.zones.map((z) => z.zone);
    // Rebuilt every time (names follow the language) with the user's choice kept.
    select.replaceChildren(...zones.map((z) => el("option", { value: z, text: zoneName(z) })));
    if (zones.includes(chosen)) select.value = chosen;
    $("drill-button").disabled = zones.length === 0;
  }

  async function refresh() {
    await CG.loadPlaces([facilityId]);
    renderStatus(await api("GET", `/api/dashboard/facility/${encodeURIComponent(facilityId)}`));
    await tables.alarms.refresh();
    CG.showError("");
  }

  async function command(btn, zone, action) {
    btn.disabled = true;
    try {
      await api("POST", `/api/facilities/${encodeURIComponent(facilityId)}/zones/${encodeURIComponent(zone)}/${action}`);
      CG.announce(`${t("commandSent")}: ${zoneName(zone)} ${t(action)}`, true);
    } catch (err) {
      CG.reportError(err, t("commandFailed"));
    } finally {
      btn.disabled = false;
    }
  }

  // The token names the facility; an admin may pass ?facility= to look at one.
  async function findFacility() {
    const wanted = new URLSearchParams(location.search).get("facility");
    if (wanted) return wanted;
    const page = await api("GET", "/api/facilities?limit=1");
    return page.items.length ? page.items[0].facility_id : null;
  }

  async function start() {
    if (!tables) makeTables();
    try {
      facilityId = await findFacility();
    } catch (err) {
      CG.reportError(err);
      return;
    }
    if (!facilityId) { CG.showError(t("noData")); return; }
    poll = CG.poller(refresh, CG.refreshSeconds(10));
  }

  function stop() { if (poll) { poll.stop(); poll = null; } }

  $("drill-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const zone = $("drill-zone").value;
    if (!zone) return;
    $("drill-button").disabled = true;
    try {
      const r = await api("POST", `/api/facilities/${encodeURIComponent(facilityId)}/drill`, { zone });
      $("drill-result").textContent = `${t("drillSent")}: ${zoneName(r.zone)} · ${formatTime(new Date().toISOString(), false, tz())}`;
    } catch (err) {
      if (!CG.shown(err)) $("drill-result").textContent = `${t("commandFailed")}: ${err.message}`;
    } finally {
      $("drill-button").disabled = false;
    }
  });
  CG.onLanguage(() => {
    if (status) renderStatus(status);
    if (live) live.relabel();  // renderStatus keeps the buttons while the cameras are the same
  });
  CG.init({ title: "facilityTitle", start, stop });
})();

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

  function makeTables() {
    tables = {
      zones: new CG.Table($("zones"), { id: "zones-table", csvName: "zones.csv", load: () => null, columns: [
        { key: "zone", label: "colZone" },
        { key: "latched", label: "latched", render: (z) => (z.latched ? kindName(z.latched) : "—") },
        { key: "armed", label: "armed", render: (z) => (z.armed === null ? "—" : t(z.armed ? "armed" : "disarmed")) },
        { key: "mode", label: "mode" },
        { key: "actions", label: "colWorkflow", csv: () => "", render: (z) => el("span", { class: "workflow" },
          button(t("arm"), (ev) => command(ev.target, z.zone, "arm"), { class: "secondary", "aria-label": `${t("arm")}: ${z.zone}` }),
          button(t("disarm"), (ev) => command(ev.target, z.zone, "disarm"), { class: "secondary", "aria-label": `${t("disarm")}: ${z.zone}` })) },
      ] }),
      cameras: new CG.Table($("cameras"), { id: "cameras-table", csvName: "cameras.csv", load: () => null, columns: [
        { key: "camera_id", label: "camera", render: (c) => `${c.name} (${c.camera_id})` },
        { key: "online", label: "online", render: (c) => el("span", { class: c.online === false ? "bad" : (c.online ? "good" : null), text: yesNo(c.online) }) },
        { key: "state", label: "status" },
        { key: "fault", label: "fault" },
        { key: "camera_fps", label: "fps", num: true, render: (c) => fmtNumber(c.camera_fps, 1) },
        { key: "last_frame_age_s", label: "frameAge", num: true, render: (c) => fmtNumber(c.last_frame_age_s, 1) },
        { key: "connection_quality", label: "quality", num: true, render: (c) => fmtNumber(c.connection_quality, 2) },
        { key: "achieved_days", label: "achievedDays", num: true, render: (c) => fmtNumber(c.achieved_days, 1) },
        { key: "retention_compliant", label: "retention", render: (c) => yesNo(c.retention_compliant) },
        { key: "reported_at", label: "lastSeen", render: (c) => formatTime(c.reported_at) },
      ] }),
      devices: new CG.Table($("devices"), { id: "devices-table", csvName: "devices.csv", load: () => null, columns: [
        { key: "device_id", label: "device" }, { key: "kind", label: "kind" }, { key: "name", label: "name" },
        { key: "zone", label: "colZone" }, { key: "active_alarms", label: "activeAlarms", num: true },
      ] }),
      events: new CG.Table($("events"), { id: "events-table", csvName: "arming-events.csv", load: () => null, columns: [
        { key: "ts", label: "time", render: (e) => formatTime(e.ts) }, { key: "zone", label: "colZone" },
        { key: "armed", label: "armed", render: (e) => (e.type === "event.latch_reset" ? t("latched") + " ✕"
          : e.armed === null ? "—" : t(e.armed ? "armed" : "disarmed")) },
        { key: "mode", label: "mode" }, { key: "by", label: "by" }, { key: "refused", label: "refused" },
      ] }),
      alarms: new CG.Table($("alarms"), { id: "facility-alarms", csvName: "alarms.csv", columns: [
        { key: "raised_at", label: "colRaised", render: (a) => formatTime(a.raised_at, true) },
        { key: "zone", label: "colZone" },
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
    $("gw-seen").textContent = `${t("lastSeen")}: ${formatTime(s.gateway_last_seen_at)}`;
    $("active-alarms").textContent = String(s.active_alarms);
    const r = s.retention;
    $("retention").textContent = r.cameras ? `${r.compliant} / ${r.cameras}` : "—";
    $("retention-req").textContent = r.required_days ? `${t("requiredDays")}: ${r.required_days}` : "";
    const paths = Object.entries(s.police_paths);
    $("paths").textContent = paths.length ? paths.map(([n, up]) => `${n} ${t(up ? "pathUp" : "pathDown")}`).join(" · ") : "—";
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
    if (select.options.length !== zones.length || zones.some((z, i) => select.options[i].value !== z)) {
      select.replaceChildren(...zones.map((z) => el("option", { value: z, text: z })));
      if (zones.includes(chosen)) select.value = chosen;
    }
    $("drill-button").disabled = zones.length === 0;
  }

  async function refresh() {
    renderStatus(await api("GET", `/api/dashboard/facility/${encodeURIComponent(facilityId)}`));
    await tables.alarms.refresh();
    CG.showError("");
  }

  async function command(btn, zone, action) {
    btn.disabled = true;
    try {
      await api("POST", `/api/facilities/${encodeURIComponent(facilityId)}/zones/${encodeURIComponent(zone)}/${action}`);
      CG.announce(`${t("commandSent")}: ${zone} ${t(action)}`);
    } catch (err) {
      if (err.status !== 401) CG.showError(`${t("commandFailed")}: ${err.message}`);
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
      if (err.status !== 401) CG.showError(err.status === 403 ? t("forbidden") : CG.errorText(err));
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
      $("drill-result").textContent = `${t("drillSent")}: ${r.zone} · ${formatTime(new Date().toISOString())}`;
    } catch (err) {
      if (err.status !== 401) $("drill-result").textContent = `${t("commandFailed")}: ${err.message}`;
    } finally {
      $("drill-button").disabled = false;
    }
  });
  CG.onLanguage(() => { if (status) renderStatus(status); });
  CG.init({ title: "facilityTitle", start, stop });
})();

// Health inspectors: room climate against GB/T 18883 with 24-hour and 7-day charts, today's
// morning and noon checks, symptom clusters and staff health certificates about to expire.
// Readings carry their units, limits read as people write them, and times are the facility's.
"use strict";

(function () {
  const { $, t, el, button, api, qs, formatTime, fmtNumber } = CG;
  let tables = null;
  let poll = null;
  let charted = null;

  const ago = (ms) => new Date(Date.now() - ms).toISOString();
  const yesNo = (v) => (v === null || v === undefined ? "—" : t(v ? "yes" : "no"));
  const tz = (fid) => { const p = CG.placeOf(fid); return p ? p.timezone : CG.DEFAULT_ZONE; };
  const when = (r, key) => formatTime(r[key], false, tz(r.facility));
  const className = (fid, id) => { const p = CG.placeOf(fid); return (p && p.classes[id]) || id; };
  const staffName = (fid, id) => { const p = CG.placeOf(fid); return (p && p.staff[id]) || id; };
  const deviceName = (fid, id) => { const p = CG.placeOf(fid); return (p && p.devices[id] && p.devices[id].name) || id; };
  const facility = (r) => CG.named(CG.facilityName(r.facility), r.facility);
  const roomTitle = (room) => `${CG.facilityName(room.facility)} · ${CG.zoneLabel(room.facility, room.zone)} · ` +
    `${deviceName(room.facility, room.device_id)} · ${CG.word("metrics", room.metric)}`;

  // A list with the names of its facilities loaded first, so rows show names, not ids.
  async function list(path) {
    const r = await api("GET", path);
    await CG.loadPlaces(r.items.map((i) => i.facility));
    return { items: r.items, next_cursor: r.next_cursor || null };
  }

  async function showChart(room, days, opener) {
    charted = { room, days };
    $("chart-box").hidden = false;
    $("chart-24h").setAttribute("aria-pressed", String(days === 1));
    $("chart-7d").setAttribute("aria-pressed", String(days === 7));
    $("chart-24h").className = days === 1 ? "" : "secondary";
    $("chart-7d").className = days === 7 ? "" : "secondary";
    renderChartTitle();
    const r = await api("GET", "/api/environment/series" + qs({ facility: room.facility, device_id: room.device_id,
      metric: room.metric, since: ago(days * 86400e3), until: new Date().toISOString(), step_s: days === 1 ? 300 : 3600 }));
    charted.points = r.points;
    drawChart();
    if (opener) { $("chart-title").focus(); CG.announce(roomTitle(room), true); }
  }

  function renderChartTitle() {
    if (charted) $("chart-title").textContent = `${t("chartTitle")}: ${roomTitle(charted.room)}（${CG.zoneName(tz(charted.room.facility))}）`;
  }

  function drawChart() {
    if (!charted || !charted.points) return;
    const room = charted.room;
    CG.lineChart($("chart"), charted.points, { low: room.limit_low, high: room.limit_high, metric: room.metric,
      tz: tz(room.facility), title: $("chart-title").textContent });
  }

  function makeTables() {
    tables = {
      rooms: new CG.Table($("rooms"), { id: "rooms-table", csvName: "rooms.csv", label: "roomsTitle", empty: "emptyRooms", columns: [
        { key: "facility", label: "colFacility", render: facility },
        { key: "zone", label: "colZone", render: (r) => CG.zoneLabel(r.facility, r.zone) },
        { key: "device_id", label: "device", render: (r) => CG.named(deviceName(r.facility, r.device_id), r.device_id) },
        { key: "metric", label: "metric", render: (r) => CG.word("metrics", r.metric) },
        { key: "latest", label: "latest", num: true, render: (r) => CG.withUnit(r.latest, r.metric, 1) },
        { key: "limits", label: "limits", csv: (r) => CG.limitText(r.limit_low, r.limit_high, r.metric),
          render: (r) => CG.limitText(r.limit_low, r.limit_high, r.metric) },
        { key: "in_range", label: "inRange", render: (r) => el("span", { class: r.in_range === false ? "bad" : "good", text: yesNo(r.in_range) }) },
        { key: "breach_since", label: "breachSince", head: () => CG.withZone(t("breachSince")), render: (r) => when(r, "breach_since") },
        { key: "latest_ts", label: "updated", head: () => CG.withZone(t("updated")), render: (r) => when(r, "latest_ts") },
        { key: "chart", label: "chart", csv: () => "", render: (r) => button(t("chart"), (ev) => showChart(r, 1, ev.currentTarget),
          { class: "secondary", "aria-label": `${t("chart")}: ${roomTitle(r)}` }) },
      ], rowAttrs: (r) => ({ class: r.in_range === false ? "breach" : null, dataset: { device: r.device_id, metric: r.metric } }),
      load: () => list("/api/environment/rooms" + qs({ since: ago(86400e3) })) }),
      checks: new CG.Table($("checks"), { id: "checks-table", csvName: "checks.csv", label: "checksTitle", empty: "emptyChecks", columns: [
        { key: "facility_name", label: "colFacility", render: (r) => CG.named(r.facility_name, r.facility) },
        { key: "class_id", label: "className", render: (r) => className(r.facility, r.class_id) },
        { key: "class_type", label: "classType", render: (r) => CG.word("classTypes", r.class_type) },
        { key: "enrolled", label: "enrolled", num: true }, { key: "morning_done", label: "morningDone", num: true },
        { key: "noon_done", label: "noonDone", num: true },
        { key: "morning_missing_after_10", label: "missingAfter10", render: (r) => el("span",
          { class: r.morning_missing_after_10 ? "bad" : null, text: yesNo(r.morning_missing_after_10) }) },
      ], rowAttrs: (r) => ({ class: r.morning_missing_after_10 ? "breach" : null }),
      load: () => list("/api/care/checks/summary" + qs({ date: CG.todayIn(CG.DEFAULT_ZONE) })) }),
      clusters: new CG.Table($("clusters"), { id: "clusters-table", csvName: "clusters.csv", label: "clustersTitle", empty: "emptyClusters", columns: [
        { key: "facility", label: "colFacility", render: facility },
        { key: "class_id", label: "className", render: (r) => className(r.facility, r.class_id) },
        { key: "symptom", label: "symptom", render: (r) => CG.word("symptoms", r.symptom) },
        { key: "count", label: "count", num: true }, { key: "first_at", label: "firstAt", head: () => CG.withZone(t("firstAt")), render: (r) => when(r, "first_at") },
        { key: "last_at", label: "lastAt", head: () => CG.withZone(t("lastAt")), render: (r) => when(r, "last_at") },
      ], rowAttrs: (r) => ({ class: r.active ? "breach" : null }),
      load: () => list("/api/care/clusters" + qs({ since: ago(7 * 86400e3) })) }),
      certs: new CG.Table($("certs"), { id: "certs-table", csvName: "certificates.csv", label: "certsTitle", empty: "emptyCerts", columns: [
        { key: "facility", label: "colFacility", render: facility },
        { key: "staff_id", label: "staffId", render: (r) => staffName(r.facility, r.staff_id) },
        { key: "role", label: "role", render: (r) => CG.word("staffRoles", r.role) },
        { key: "kind", label: "certKind", render: (r) => CG.word("documents", r.kind) },
        { key: "expires_on", label: "expiresOn" },
        { key: "status", label: "status", render: (r) => el("span", { class: r.status === "ok" ? "good" : "bad", text: t("cert_" + r.status) }) },
      ], load: () => list("/api/care/certificates" + qs({ within_days: 30 })) }),
    };
  }

  async function refresh() {
    await Promise.all(Object.values(tables).map((tb) => tb.refresh()));
    CG.showError("");
  }

  function start() {
    if (!tables) makeTables();
    poll = CG.poller(refresh, CG.refreshSeconds(30));
  }

  function stop() { if (poll) { poll.stop(); poll = null; } }

  $("chart-24h").addEventListener("click", () => charted && showChart(charted.room, 1).catch(CG.reportError));
  $("chart-7d").addEventListener("click", () => charted && showChart(charted.room, 7).catch(CG.reportError));
  CG.onLanguage(() => { renderChartTitle(); drawChart(); });
  CG.init({ title: "healthTitle", start, stop });
})();

// Supervisors: compliance by district with drill-down to a facility's findings, places per 1,000
// people against the target, cameras online, retention compliance, response times and the live
// alarm feed. Every table exports to CSV from what is loaded.
"use strict";

(function () {
  const { $, t, kindName, el, button, api, qs, formatTime, fmtNumber, fmtPercent } = CG;
  const PLACES_TARGET = 4.5;  // places per 1,000 people, the 2025 national target
  const RECENT = 20;
  let tables = null;
  let source = null;
  let poll = null;
  let district = null;
  let recent = [];

  function makeTables() {
    tables = {
      districts: new CG.Table($("districts"), { id: "districts-table", csvName: "compliance-by-district.csv", load: () => null, columns: [
        { key: "city", label: "city" },
        { key: "district", label: "district", render: (d) => button(d.district, () => openDistrict(d),
          { class: "link", "aria-label": `${t("district")}: ${d.district}` }) },
        { key: "facilities", label: "facilities", num: true }, { key: "compliant", label: "compliant", num: true },
        { key: "warning", label: "warning", num: true }, { key: "non_compliant", label: "non_compliant", num: true },
      ], rowAttrs: (d) => ({ class: d.non_compliant ? "breach" : null }) }),
      facilities: new CG.Table($("district-facilities"), { id: "district-facilities-table", csvName: "district-compliance.csv", columns: [
        { key: "facility", label: "colFacility", render: (r) => button(r.facility, () => openFacility(r),
          { class: "link", "aria-label": `${t("facilityFindings")}: ${r.facility}` }) },
        { key: "status", label: "status", render: (r) => el("span", { class: `status-${r.status}`, text: t(r.status) }) },
        { key: "score", label: "score", num: true }, { key: "findings", label: "findings", num: true,
          csv: (r) => r.findings.length, render: (r) => String(r.findings.length) },
      ], load: (cursor) => api("GET", "/api/compliance" + qs({ district: district && district.district,
        city: district && district.city, limit: 20, cursor })) }),
      findings: new CG.Table($("findings"), { id: "findings-table", csvName: "findings.csv", load: () => null, columns: [
        { key: "rule", label: "rule" }, { key: "level", label: "level", render: (f) => t(f.level) },
        { key: "message", label: "message" }, { key: "source", label: "source" },
      ] }),
      places: new CG.Table($("places"), { id: "places-table", csvName: "places.csv", columns: [
        { key: "district", label: "district" }, { key: "population", label: "population", num: true },
        { key: "places", label: "places", num: true },
        { key: "places_per_1000", label: "placesPer1000", num: true, render: (r) => fmtNumber(r.places_per_1000, 2) },
        { key: "target", label: "target", num: true },
        { key: "puhui_share", label: "puhuiShare", num: true, render: (r) => fmtPercent(r.puhui_share) },
        { key: "occupancy", label: "occupancy", num: true, render: (r) => fmtPercent(r.occupancy) },
      ], load: async () => {
        const { items } = await api("GET", "/api/statistics/places");
        CG.barChart($("places-chart"), items.map((p) => ({ label: p.district, value: p.places_per_1000 })),
          { target: items.length && items[0].target ? items[0].target : PLACES_TARGET, title: t("placesTitle") });
        return { items, next_cursor: null };
      } }),
      response: new CG.Table($("response"), { id: "response-table", csvName: "response-times.csv", load: () => null, columns: [
        { key: "city", label: "city" }, { key: "district", label: "district" }, { key: "alarms", label: "alarms", num: true },
        { key: "acknowledged", label: "acknowledged", num: true }, { key: "dispatched", label: "dispatched", num: true },
        { key: "ack_median_s", label: "ackMedian", num: true }, { key: "ack_p90_s", label: "ackP90", num: true },
        { key: "dispatch_median_s", label: "dispatchMedian", num: true },
      ] }),
      recent: new CG.Table($("recent"), { id: "recent-table", csvName: "latest-alarms.csv", load: () => null, columns: [
        { key: "raised_at", label: "colRaised", render: (a) => formatTime(a.raised_at, true) },
        { key: "facility", label: "colFacility" }, { key: "zone", label: "colZone" },
        { key: "kind", label: "colKind", render: (a) => kindName(a.kind) }, { key: "state", label: "colState", render: (a) => t(a.state) },
        { key: "acked_by", label: "ackedBy" },
      ], rowAttrs: (a) => ({ dataset: { alarmId: a.alarm_id }, class: `kind-${a.kind}` }) }),
      // Messages ingest refused for good, per facility: a gateway sending poison shows up here.
      deadLetters: new CG.Table($("dead-letters"), { id: "dead-letters-table", csvName: "dead-letters.csv", columns: [
        { key: "facility", label: "colFacility" }, { key: "dead_letters", label: "deadLetters", num: true },
      ], load: async () => ({ items: await api("GET", "/api/dashboard/dead-letters"), next_cursor: null }) }),
    };
  }

  async function openDistrict(d) {
    district = d;
    $("drill").hidden = false;
    $("findings-box").hidden = true;
    $("drill-title").textContent = `${d.city} ${d.district}`;
    try { await tables.facilities.reload(); } catch (err) { if (err.status !== 401) CG.showError(CG.errorText(err)); }
    $("drill-back").focus();
  }

  async function openFacility(r) {
    try {
      const report = await api("GET", `/api/compliance/${encodeURIComponent(r.facility)}`);
      $("findings-box").hidden = false;
      $("findings-title").textContent = `${t("facilityFindings")}: ${report.facility} · ${t(report.status)} · ${report.score}`;
      tables.findings.setItems(report.findings);
    } catch (err) { if (err.status !== 401) CG.showError(CG.errorText(err)); }
  }

  async function loadOverview() {
    const o = await api("GET", "/api/dashboard/supervision");
    tables.districts.setItems(o.districts);
    tables.response.setItems(o.response_times);
    $("kpi-cameras").textContent = `${fmtPercent(o.cameras_online.ratio)} (${o.cameras_online.good}/${o.cameras_online.total})`;
    $("kpi-retention").textContent = `${fmtPercent(o.retention_compliant.ratio)} (${o.retention_compliant.good}/${o.retention_compliant.total})`;
    await tables.places.refresh();
    await tables.deadLetters.refresh();
    CG.showError("");
  }

  // The list and the stream race after a reconnect: merge by id, the newer copy wins, so an
  // alarm pushed while the list was on its way is not lost to a stale page.
  function mergeRecent(items) {
    const byId = new Map(recent.map((a) => [a.alarm_id, a]));
    for (const a of items) {
      const held = byId.get(a.alarm_id);
      if (!held || held.updated_at <= a.updated_at) byId.set(a.alarm_id, a);
    }
    recent = [...byId.values()].sort((x, y) => (x.sort_ts < y.sort_ts ? 1 : -1)).slice(0, RECENT);
    tables.recent.setItems(recent);
  }

  async function loadRecent() {
    mergeRecent((await api("GET", "/api/alarms" + qs({ limit: RECENT }))).items);
  }

  function onAlarm(a) { mergeRecent([a]); }

  function start() {
    if (!tables) makeTables();
    poll = CG.poller(loadOverview, CG.refreshSeconds(60));
    source = CG.stream("/api/alarms/stream", {
      open: () => loadRecent().catch(() => {}), alarm: onAlarm, resync: () => loadRecent().catch(() => {}),
      escalation: (n) => onAlarm(n.alarm), closed: () => loadRecent().catch(() => {}),
    });
  }

  function stop() {
    if (poll) { poll.stop(); poll = null; }
    if (source) { source.close(); source = null; }
  }

  $("drill-back").addEventListener("click", () => { $("drill").hidden = true; district = null; });
  CG.init({ title: "supervisionTitle", start, stop });
})();

// Supervisors: compliance by district with drill-down to a facility's findings (in the page's
// language), places per 1,000 people against the target, cameras online, retention compliance,
// response times and the live alarm feed. Every table exports to CSV from what is loaded.
"use strict";

(function () {
  const { $, t, kindName, el, button, api, qs, formatTime, fmtNumber, fmtPercent } = CG;
  const PLACES_TARGET = 4.5;  // places per 1,000 people, the 2025 national target
  const RECENT = 20;
  let tables = null;
  let source = null;
  let poll = null;
  let district = null;
  let report = null;
  let recent = [];
  let placesItems = [];

  const districtName = (d) => `${d.city} ${d.district}`;

  function makeTables() {
    tables = {
      districts: new CG.Table($("districts"), { id: "districts-table", csvName: "compliance-by-district.csv", load: () => null,
        label: "districtTitle", empty: "emptyDistricts", columns: [
          { key: "district", label: "district", csv: districtName, render: (d) => button(districtName(d), (ev) => openDistrict(d, ev.currentTarget),
            { class: "link", "aria-label": `${t("district")}: ${districtName(d)}` }) },
          { key: "facilities", label: "facilities", num: true }, { key: "compliant", label: "compliant", num: true },
          { key: "warning", label: "warning", num: true }, { key: "non_compliant", label: "non_compliant", num: true },
        ], rowAttrs: (d) => ({ class: d.non_compliant ? "breach" : null }) }),
      facilities: new CG.Table($("district-facilities"), { id: "district-facilities-table", csvName: "district-compliance.csv",
        label: "facilityFindings", empty: "emptyDistricts", columns: [
          { key: "facility", label: "colFacility", csv: (r) => r.facility_name, render: (r) => el("span", {},
            button(r.facility_name, () => openFacility(r), { class: "link", "aria-label": `${t("facilityFindings")}: ${r.facility_name}` }),
            " ", el("small", { class: "id", text: r.facility })) },
          { key: "status", label: "status", render: (r) => el("span", { class: `status-${r.status}`, text: t(r.status) }) },
          { key: "score", label: "score", num: true }, { key: "findings", label: "findings", num: true,
            csv: (r) => r.findings.length, render: (r) => String(r.findings.length) },
        ], load: (cursor) => api("GET", "/api/compliance" + qs({ district: district && district.district,
          city: district && district.city, limit: 20, cursor })) }),
      findings: new CG.Table($("findings"), { id: "findings-table", csvName: "findings.csv", load: () => null,
        label: "findings", empty: "emptyFindings", columns: [
          { key: "rule", label: "rule", render: (f) => CG.word("rules", f.rule) },
          { key: "level", label: "level", render: (f) => el("span", { class: f.level === "breach" ? "bad" : "status-warning",
            text: CG.word("levels", f.level) }) },
          { key: "message", label: "message", csv: (f) => CG.findingText(f), render: (f) => CG.findingText(f) },
          { key: "source", label: "source", render: (f) => el("span", { lang: "zh-CN", text: f.source }) },
        ] }),
      places: new CG.Table($("places"), { id: "places-table", csvName: "places.csv", label: "placesTitle", columns: [
        { key: "district", label: "district", render: (r) => CG.districtPathText(r.district) },
        { key: "population", label: "population", num: true, render: (r) => (r.population ? r.population.toLocaleString() : "—") },
        { key: "places", label: "places", num: true },
        { key: "places_per_1000", label: "placesPer1000", num: true, render: (r) => fmtNumber(r.places_per_1000, 2) },
        { key: "target", label: "target", num: true },
        { key: "puhui_share", label: "puhuiShare", num: true, render: (r) => fmtPercent(r.puhui_share) },
        { key: "occupancy", label: "occupancy", num: true, render: (r) => fmtPercent(r.occupancy) },
      ], load: async () => {
        placesItems = (await api("GET", "/api/statistics/places")).items;
        drawPlaces();
        return { items: placesItems, next_cursor: null };
      } }),
      response: new CG.Table($("response"), { id: "response-table", csvName: "response-times.csv", load: () => null,
        label: "responseTitle", empty: "emptyResponse", columns: [
          { key: "district", label: "district", csv: districtName, render: districtName },
          { key: "alarms", label: "alarms", num: true },
          { key: "acknowledged", label: "acknowledged", num: true }, { key: "dispatched", label: "dispatched", num: true },
          { key: "ack_median_s", label: "ackMedian", num: true }, { key: "ack_p90_s", label: "ackP90", num: true },
          { key: "dispatch_median_s", label: "dispatchMedian", num: true },
        ] }),
      recent: new CG.Table($("recent"), { id: "recent-table", csvName: "latest-alarms.csv", load: () => null,
        label: "recentAlarms", empty: "emptyRecent", columns: [
          { key: "raised_at", label: "colRaised", head: () => CG.withZone(t("colRaised")), render: (a) => formatTime(a.raised_at, true, (CG.placeOf(a.facility) || {}).timezone) },
          { key: "facility", label: "colFacility", render: (a) => CG.named(CG.facilityName(a.facility), a.facility) },
          { key: "zone", label: "colZone", render: (a) => CG.zoneLabel(a.facility, a.zone) },
          { key: "kind", label: "colKind", render: (a) => kindName(a.kind) }, { key: "state", label: "colState", render: (a) => t(a.state) },
          { key: "acked_by", label: "ackedBy" },
        ], rowAttrs: (a) => ({ dataset: { alarmId: a.alarm_id }, class: `kind-${a.kind}` }) }),
      // Messages ingest refused for good, per facility: a gateway sending poison shows up here.
      deadLetters: new CG.Table($("dead-letters"), { id: "dead-letters-table", csvName: "dead-letters.csv",
        label: "deadLettersTitle", empty: "noData", columns: [
        { key: "facility", label: "colFacility", render: (r) => CG.named(CG.facilityName(r.facility), r.facility) },
        { key: "dead_letters", label: "deadLetters", num: true },
      ], load: async () => ({ items: await api("GET", "/api/dashboard/dead-letters"), next_cursor: null }) }),
    };
  }

  // Bars for the districts with a population; the empty state names what is missing and who enters it.
  function drawPlaces() {
    const items = placesItems;
    const target = items.length && items[0].target ? items[0].target : PLACES_TARGET;
    const missing = items.filter((p) => !p.population);
    CG.barChart($("places-chart"), items.map((p) => ({ label: CG.districtPathText(p.district), value: p.places_per_1000 })),
      { target, title: t("placesTitle"), missing: t("population") + " —" });
    $("places-missing").hidden = missing.length === 0;
    $("places-missing").textContent = missing.length ? `${t("emptyPopulation")} (${missing.map((p) => CG.districtPathText(p.district)).join(CG.lang() === "zh" ? "、" : ", ")})` : "";
  }

  async function openDistrict(d) {
    district = d;
    $("drill").hidden = false;
    $("findings-box").hidden = true;
    $("drill-title").textContent = districtName(d);
    try { await tables.facilities.reload(); } catch (err) { CG.reportError(err); }
    $("drill-title").focus();
    CG.announce(districtName(d), true);
  }

  function renderFindingsTitle() {
    if (report) $("findings-title").textContent = `${t("facilityFindings")}: ${report.facility_name} · ${t(report.status)} · ${report.score}`;
  }

  async function openFacility(r) {
    try {
      report = await api("GET", `/api/compliance/${encodeURIComponent(r.facility)}`);
      $("findings-box").hidden = false;
      renderFindingsTitle();
      tables.findings.setItems(report.findings);
      $("findings-title").focus();
      CG.announce($("findings-title").textContent, true);
    } catch (err) { CG.reportError(err); }
  }

  let overview = null;
  function renderKpis() {
    if (!overview) return;
    const ratio = (r) => (r.total ? `${fmtPercent(r.ratio)} (${r.good}/${r.total})` : t("noCameraData"));
    $("kpi-cameras").textContent = ratio(overview.cameras_online);
    $("kpi-retention").textContent = ratio(overview.retention_compliant);
  }

  async function loadOverview() {
    overview = await api("GET", "/api/dashboard/supervision");
    tables.districts.setItems(overview.districts);
    tables.response.setItems(overview.response_times);
    renderKpis();
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
    const page = await api("GET", "/api/alarms" + qs({ limit: RECENT }));
    CG.rememberPlaces(page.places);
    mergeRecent(page.items);
  }

  function onAlarm(a) {
    if (CG.placeOf(a.facility)) mergeRecent([a]);
    else CG.loadPlaces([a.facility]).catch(() => {}).then(() => mergeRecent([a]));
  }

  function start() {
    if (!tables) makeTables();
    poll = CG.poller(loadOverview, CG.refreshSeconds(60));
    source = CG.stream("/api/alarms/stream", {
      open: () => loadRecent().catch(CG.reportError), alarm: onAlarm, resync: () => loadRecent().catch(CG.reportError),
      escalation: (n) => onAlarm(n.alarm), closed: () => loadRecent().catch(CG.reportError),
    });
  }

  function stop() {
    if (poll) { poll.stop(); poll = null; }
    if (source) { source.close(); source = null; }
  }

  $("drill-back").addEventListener("click", () => {
    $("drill").hidden = true;
    district = null;
    report = null;
    const back = $("districts").querySelector("button.link");
    if (back) back.focus();
  });
  CG.onLanguage(() => { renderKpis(); renderFindingsTitle(); if (district) $("drill-title").textContent = districtName(district); if (tables) drawPlaces(); });
  CG.init({ title: "supervisionTitle", start, stop });
})();

// Health inspectors: room climate against GB/T 18883 with 24-hour and 7-day charts, today's
// morning and noon checks, symptom clusters and staff health certificates about to expire.
"use strict";

(function () {
  const { $, t, el, button, api, qs, formatTime, fmtNumber } = CG;
  let tables = null;
  let poll = null;
  let charted = null;

  const todayLocal = () => { const d = new Date(); return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; };
  const ago = (ms) => new Date(Date.now() - ms).toISOString();
  const list = (path) => api("GET", path).then((r) => ({ items: r.items, next_cursor: r.next_cursor || null }));
  const yesNo = (v) => (v === null || v === undefined ? "—" : t(v ? "yes" : "no"));

  async function showChart(room, days) {
    charted = { room, days };
    $("chart-box").hidden = false;
    $("chart-title").textContent = `${room.facility} · ${room.zone || ""} · ${room.device_id} · ${room.metric}`;
    $("chart-24h").className = days === 1 ? "" : "secondary";
    $("chart-7d").className = days === 7 ? "" : "secondary";
    const r = await api("GET", "/api/environment/series" + qs({ facility: room.facility, device_id: room.device_id,
      metric: room.metric, since: ago(days * 86400e3), until: new Date().toISOString(), step_s: days === 1 ? 300 : 3600 }));
    CG.lineChart($("chart"), r.points, { low: room.limit_low, high: room.limit_high, title: $("chart-title").textContent });
  }

  function makeTables() {
    tables = {
      rooms: new CG.Table($("rooms"), { id: "rooms-table", csvName: "rooms.csv", columns: [
        { key: "facility", label: "colFacility" }, { key: "zone", label: "colZone" }, { key: "device_id", label: "device" },
        { key: "metric", label: "metric" }, { key: "latest", label: "latest", num: true, render: (r) => fmtNumber(r.latest, 1) },
        { key: "limits", label: "limits", csv: (r) => `${r.limit_low ?? ""}-${r.limit_high ?? ""}`,
          render: (r) => `${fmtNumber(r.limit_low)} – ${fmtNumber(r.limit_high)}` },
        { key: "in_range", label: "inRange", render: (r) => el("span", { class: r.in_range === false ? "bad" : "good", text: yesNo(r.in_range) }) },
        { key: "breach_since", label: "breachSince", render: (r) => formatTime(r.breach_since) },
        { key: "latest_ts", label: "updated", render: (r) => formatTime(r.latest_ts) },
        { key: "chart", label: "chart", csv: () => "", render: (r) => button(t("chart"), () => showChart(r, 1),
          { class: "secondary", "aria-label": `${t("chart")}: ${r.device_id} ${r.metric}` }) },
      ], rowAttrs: (r) => ({ class: r.in_range === false ? "breach" : null, dataset: { device: r.device_id, metric: r.metric } }),
      load: () => list("/api/environment/rooms" + qs({ since: ago(86400e3) })) }),
      checks: new CG.Table($("checks"), { id: "checks-table", csvName: "checks.csv", columns: [
        { key: "facility_name", label: "colFacility", render: (r) => `${r.facility_name} (${r.facility})` },
        { key: "class_id", label: "className" }, { key: "class_type", label: "classType", render: (r) => (CG.lang() === "zh" && r.class_type_zh) || r.class_type },
        { key: "enrolled", label: "enrolled", num: true }, { key: "morning_done", label: "morningDone", num: true },
        { key: "noon_done", label: "noonDone", num: true }, { key: "morning_missing_after_10", label: "missingAfter10", render: (r) => yesNo(r.morning_missing_after_10) },
      ], load: () => list("/api/care/checks/summary" + qs({ date: todayLocal() })) }),
      clusters: new CG.Table($("clusters"), { id: "clusters-table", csvName: "clusters.csv", columns: [
        { key: "facility", label: "colFacility" }, { key: "class_id", label: "className" }, { key: "symptom", label: "symptom" },
        { key: "count", label: "count", num: true }, { key: "first_at", label: "firstAt", render: (r) => formatTime(r.first_at) },
        { key: "last_at", label: "lastAt", render: (r) => formatTime(r.last_at) },
      ], load: () => list("/api/care/clusters" + qs({ since: ago(7 * 86400e3) })) }),
      certs: new CG.Table($("certs"), { id: "certs-table", csvName: "certificates.csv", columns: [
        { key: "facility", label: "colFacility" }, { key: "staff_id", label: "staffId" }, { key: "role", label: "role" },
        { key: "kind", label: "certKind" }, { key: "expires_on", label: "expiresOn" }, { key: "status", label: "status" },
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

  $("chart-24h").addEventListener("click", () => charted && showChart(charted.room, 1));
  $("chart-7d").addEventListener("click", () => charted && showChart(charted.room, 7));
  CG.init({ title: "healthTitle", start, stop });
})();

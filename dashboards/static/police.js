// Police desk: the live alarm board, the police workflow (acknowledge, dispatch, resolve), the
// facility card with the zone's latest pictures, and the state of every facility's police paths.
"use strict";

(function () {
  const { $, t, kindName, el, button, api, qs, formatTime } = CG;
  const PAGE_SIZE = 100;
  const alarms = new Map();
  const freshIds = new Set();
  let source = null;
  let nextBefore = null;
  let filter = { city: "", district: "" };
  let audio = null;
  let cardAlarm = null;
  let cardScene = null;  // the open card's clip poller and live views
  let pathsTable = null;

  const COLUMNS = ["colFacility", "colZone", "colKind", "colRaised", "colDelivered", "colDeliveryMs", "colState",
    "colAck", "colWorkflow", "colDetail"];

  // Browsers allow sound only after a user gesture: the first click or key press unlocks it.
  function unlockAudio() {
    if (audio) return;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    audio = new Ctx();
    $("sound-hint").hidden = true;
  }

  function beep() {
    if (!audio || audio.state !== "running") return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = 880;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    const now = audio.currentTime;
    for (let i = 0; i < 3; i++) {
      gain.gain.setValueAtTime(0.15, now + i * 0.3);
      gain.gain.setValueAtTime(0, now + i * 0.3 + 0.18);
    }
    osc.start(now);
    osc.stop(now + 0.9);
  }

  const isDrill = (a) => a.kind === "test";
  const label = (a) => `${a.facility} ${a.zone || a.source} ${kindName(a.kind)}`;

  function newestFirst(a, b) {
    if (a.sort_ts !== b.sort_ts) return a.sort_ts < b.sort_ts ? 1 : -1;
    return a.alarm_id < b.alarm_id ? 1 : -1;
  }

  function ackCell(a) {
    if (a.acked_at) {
      return el("span", {}, el("span", { class: "acked", text: `${t("ackedBy")} · ${a.acked_by}` }),
        el("span", { class: "acked-at", text: formatTime(a.acked_at, true) }));
    }
    return button(t("ack"), (ev) => act(ev.target, `/api/alarms/${a.alarm_id}/ack`, undefined, (r) => r.alarm),
      { class: "ack", "aria-label": `${t("ack")}: ${label(a)}` });
  }

  function workflowCell(a) {
    const box = el("div", { class: "workflow" });
    if (a.resolved_at) {
      box.append(el("span", { class: "acked", text: `${t("resolvedAs")} · ${t("outcome_" + a.outcome)}` }));
      return box;
    }
    if (isDrill(a)) box.append(el("span", { class: "drill-note", text: t("drillNoDispatch") }));
    else if (a.dispatched_at) box.append(el("span", { class: "acked", text: `${t("dispatchedBy")} · ${a.dispatched_by}` }));
    else {
      box.append(button(t("dispatch"), (ev) => act(ev.target, `/api/alarms/${a.alarm_id}/dispatch`),
        { class: "dispatch", disabled: !a.acked_at, "aria-label": `${t("dispatch")}: ${label(a)}` }));
    }
    const select = el("select", { "aria-label": `${t("outcome")}: ${label(a)}`, class: "outcome" });
    for (const o of isDrill(a) ? ["test"] : ["real", "false"]) select.append(el("option", { value: o, text: t("outcome_" + o) }));
    box.append(select, button(t("resolve"), (ev) => act(ev.target, `/api/alarms/${a.alarm_id}/resolve`,
      { outcome: select.value }), { class: "resolve", disabled: !a.acked_at, "aria-label": `${t("resolve")}: ${label(a)}` }));
    return box;
  }

  function buildRow(a) {
    const tr = el("tr", {
      dataset: { alarmId: a.alarm_id },
      class: `kind-${a.kind}` + (a.acked_at ? "" : " unacked") + (freshIds.has(a.alarm_id) ? " fresh" : ""),
    });
    const kind = el("span", { text: kindName(a.kind) });
    const kindCell = el("td", { class: "kind" }, kind);
    if (isDrill(a)) kindCell.append(" ", el("span", { class: "badge drill", text: t("drill") }));
    const delivered = el("td", { class: "time", text: formatTime(a.delivered_at, true),
      title: a.receiver ? `${a.delivered_at} ← ${a.receiver}` : (a.delivered_at || "") });
    tr.append(el("td", { text: a.facility }), el("td", { text: a.zone || a.source }), kindCell,
      el("td", { class: "time", text: formatTime(a.raised_at, true), title: a.raised_at || "" }), delivered,
      el("td", { class: "num", text: a.delivery_ms === null ? "—" : String(a.delivery_ms) }),
      el("td", { class: `state-${a.state}`, text: t(a.state) }), el("td", {}, ackCell(a)), el("td", {}, workflowCell(a)),
      el("td", {}, button(t("details"), () => openCard(a), { class: "secondary", "aria-label": `${t("details")}: ${label(a)}` })));
    return tr;
  }

  function render() {
    $("alarm-head").replaceChildren(...COLUMNS.map((c) => el("th", { scope: "col", text: t(c) })));
    const body = $("alarm-rows");
    const active = document.activeElement;
    const focusedRow = active && active.closest ? active.closest("tr[data-alarm-id]") : null;
    const focusedClass = focusedRow ? active.className : null;
    const rows = [...alarms.values()].sort(newestFirst);
    body.replaceChildren(...rows.map(buildRow));
    freshIds.clear();
    $("empty").hidden = rows.length > 0;
    $("unacked-count").textContent = String(rows.filter((a) => !a.acked_at).length);
    $("load-more").hidden = !nextBefore;
    // Keep keyboard focus where it was when a live update redraws the table.
    if (focusedRow) {
      const again = body.querySelector(`tr[data-alarm-id="${focusedRow.dataset.alarmId}"] ` +
        (focusedClass ? `.${focusedClass.split(" ")[0]}` : "button"));
      if (again) again.focus();
    }
  }

  function matchesFilter() { return !filter.city && !filter.district; }

  function upsert(a, live) {
    const before = alarms.get(a.alarm_id);
    if (before && before.updated_at > a.updated_at) return;  // an older copy arriving late
    // With a district filter the stream (unfiltered) only refreshes rows already listed.
    if (live && !before && !matchesFilter()) return;
    alarms.set(a.alarm_id, a);
    if (live && liveDuringLoad) liveDuringLoad.add(a.alarm_id);
    if (live && !before) {
      freshIds.add(a.alarm_id);
      CG.announce(`${t("newAlarm")}: ${label(a)}`);
      if (a.kind === "panic") beep();
    }
  }

  // Rows pushed live while a fresh list is on its way are newer than that list: a reload
  // (after every reconnect) must not wipe them, or an alarm landing then would vanish.
  let liveDuringLoad = null;

  async function loadList(more) {
    if (!more) liveDuringLoad = new Set();
    try {
      const page = await api("GET", "/api/alarms" + qs({ limit: PAGE_SIZE, city: filter.city, district: filter.district,
        before: more ? nextBefore : null }));
      if (!more) {
        for (const id of [...alarms.keys()]) if (!liveDuringLoad.has(id)) alarms.delete(id);
        liveDuringLoad = null;
      }
      for (const a of page.items) upsert(a, false);
      nextBefore = page.next_before;
      CG.showError("");
      render();
    } catch (err) {
      if (err.status !== 401) CG.showError(err.status === 403 ? t("forbidden") : CG.errorText(err));
    }
  }

  async function act(btn, path, body, pick) {
    btn.disabled = true;
    try {
      const result = await api("POST", path, body);
      upsert(pick ? pick(result) : result, false);
      render();
    } catch (err) {
      btn.disabled = false;
      if (err.status !== 401) CG.showError(`${t("ackFailed")}: ${err.message}`);
    }
  }

  // --- facility card -------------------------------------------------------------------
  function field(name, value) { return [el("dt", { text: t(name) }), el("dd", { text: value || "—" })]; }

  async function openCard(a) {
    cardAlarm = a;
    $("card").hidden = false;
    $("card-fields").replaceChildren();
    $("card-snapshots").replaceChildren();
    try {
      const [fac, extra] = await Promise.all([
        api("GET", `/api/facilities/${encodeURIComponent(a.facility)}`),
        api("GET", `/api/dashboard/police-card/${encodeURIComponent(a.facility)}` + qs({ zone: a.zone })),
      ]);
      if (cardAlarm !== a) return;
      const enrolled = Object.values(fac.enrolment || {}).reduce((s, n) => s + n, 0);
      $("card-fields").replaceChildren(
        ...field("colFacility", `${fac.name} (${fac.facility_id})`),
        ...field("address", `${fac.district.city}${fac.district.district}${fac.district.street} ${fac.address}`),
        ...field("coordinates", fac.location ? `${fac.location.lat}, ${fac.location.lon}` : null),
        ...field("contact", fac.contact ? `${fac.contact.name} ${fac.contact.phone}` : null),
        ...field("enrolled", String(enrolled)),
        ...field("guards", extra.guards.length ? `${extra.guards.length}: ${extra.guards.join("、")}` : "0"),
        ...field("colDelivered", a.delivery_ms === null ? formatTime(a.delivered_at, true)
          : `${formatTime(a.delivered_at, true)} (${a.delivery_ms} ms)`));
      const pics = await Promise.all(extra.zone_cameras.map(async (cam) => {
        try {
          const blob = await api("GET", `/api/facilities/${encodeURIComponent(a.facility)}/cameras/` +
            `${encodeURIComponent(cam)}/snapshot` + qs({ alarm_id: a.alarm_id }));
          return el("figure", {}, el("img", { src: URL.createObjectURL(blob), alt: `${cam}` }), el("figcaption", { text: cam }));
        } catch (err) {
          return el("figure", {}, el("p", { class: "empty", text: t("noSnapshot") }), el("figcaption", { text: cam }));
        }
      }));
      if (cardAlarm === a) {
        $("card-snapshots").replaceChildren(...(pics.length ? pics : [el("p", { class: "empty", text: t("noSnapshot") })]));
        openScene(a, extra.zone_cameras);
      }
      $("card-close").focus();
    } catch (err) {
      if (err.status !== 401) CG.showError(CG.errorText(err));
    }
  }

  // The zone's alarm clips (polled until every one has arrived) and its cameras live.
  function openScene(a, cameras) {
    closeScene();
    const live = CGScene.liveButtons($("card-live"), a.facility, cameras);
    $("card-live-buttons").replaceChildren(...live.buttons);
    const isCurrent = () => cardAlarm === a;
    let timer = null;
    const poll = async () => {
      try {
        const clips = await CGScene.showClips($("card-clips"), a.alarm_id, isCurrent);
        if (isCurrent() && (!clips.length || clips.some((c) => !c.complete))) timer = setTimeout(poll, 3000);
      } catch (err) {
        if (isCurrent() && err.status !== 401) timer = setTimeout(poll, 5000);
      }
    };
    poll();
    cardScene = { stop: () => { clearTimeout(timer); live.stopAll(); } };
  }

  function closeScene() {
    if (cardScene) cardScene.stop();
    cardScene = null;
    $("card-clips").replaceChildren();
    $("card-live-buttons").replaceChildren();
  }

  // --- police paths ----------------------------------------------------------------------
  function pathsCell(r) {
    const names = Object.keys(r.paths);
    if (!names.length) return "—";
    return el("span", {}, ...names.map((n) => el("span", { class: `badge ${r.paths[n] ? "up" : "down"}`,
      text: `${n} ${t(r.paths[n] ? "pathUp" : "pathDown")}` })));
  }

  function makePathsTable() {
    pathsTable = new CG.Table($("paths"), {
      id: "paths-table", csvName: "police-paths.csv",
      columns: [
        { key: "facility", label: "colFacility", render: (r) => `${r.name} (${r.facility})` },
        { key: "district", label: "filterDistrict" },
        { key: "heartbeat_at", label: "heartbeat", render: (r) => formatTime(r.heartbeat_at) },
        { key: "paths", label: "paths", render: pathsCell },
        { key: "link_down_alarms", label: "linkDown", num: true },
        { key: "video_platform", label: "videoPlatform", render: (r) => CG.videoPlatformText(r.video_platform) },
      ],
      rowAttrs: (r) => ({ class: r.link_down_alarms || Object.values(r.paths).some((up) => !up)
        || (r.video_platform && !r.video_platform.registered) ? "path-bad" : null }),
      load: (cursor) => api("GET", "/api/dashboard/police-paths" + qs({ limit: 20, cursor, city: filter.city,
        district: filter.district })),
    });
  }

  // --- wiring ------------------------------------------------------------------------------
  function stop() {
    if (source) { source.close(); source = null; }
  }

  function start() {
    if (!pathsTable) makePathsTable();
    loadList(false);
    pathsTable.reload().catch(() => {});
    stop();
    source = CG.stream("/api/alarms/stream", {
      // Refetch on every (re)connection: whatever changed while the stream was down is in the list.
      open: () => loadList(false),
      alarm: (a) => {
        upsert(a, true);
        render();
        if (a.kind === "police_link_down" || a.kind === "video_platform_down") pathsTable.refresh().catch(() => {});
      },
      resync: () => loadList(false),
      closed: () => loadList(false),  // tells a rejected token (401) apart from a server that is down
    });
  }

  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    filter = { city: $("f-city").value.trim(), district: $("f-district").value.trim() };
    loadList(false);
    pathsTable.reload().catch(() => {});
  });
  $("f-clear").addEventListener("click", () => {
    $("f-city").value = $("f-district").value = "";
    filter = { city: "", district: "" };
    loadList(false);
    pathsTable.reload().catch(() => {});
  });
  $("load-more").addEventListener("click", () => loadList(true));
  $("card-close").addEventListener("click", () => { $("card").hidden = true; cardAlarm = null; closeScene(); });
  document.addEventListener("click", unlockAudio, { once: false, capture: true });
  document.addEventListener("keydown", unlockAudio, { capture: true });
  CG.onLanguage(() => { if ($("alarm-head")) render(); });
  CG.init({ title: "policeTitle", start, stop });
})();

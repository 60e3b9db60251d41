// Police desk: the live alarm board, the police workflow (acknowledge, dispatch with a note,
// resolve with an outcome), the facility card with the zone's latest pictures, and the state of
// every facility's police paths.
//
// Live updates never take away what the dispatcher is doing: rows are rebuilt only when their
// alarm changed, the outcome chosen and the note typed are kept per alarm, and focus goes back
// to the same control of the same alarm.
"use strict";

(function () {
  const { $, t, kindName, el, button, api, qs, formatTime } = CG;
  const PAGE_SIZE = 100;
  const alarms = new Map();
  const freshIds = new Set();
  const rows = new Map();           // alarm_id -> {rec, lang (and names version), node}
  const outcomeChoice = new Map();  // alarm_id -> outcome chosen, until the alarm is resolved
  const noteDraft = new Map();      // alarm_id -> dispatch note being typed
  // Ids pushed live while a list load is on its way, one set per load in flight: such rows are
  // newer than that list, and the reload that follows every reconnect must not wipe them.
  const liveDuringLoads = new Set();
  let listGeneration = 0;   // full list loads started
  let listApplied = 0;      // the newest of them whose answer is on the board
  let source = null;
  let nextBefore = null;
  let filter = { city: "", district: "" };
  let audio = null;
  let cardAlarm = null;
  let cardScene = null;  // the open card's clip poller and live views
  let pathsTable = null;

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
  const tzOf = (a) => { const p = CG.placeOf(a.facility); return p ? p.timezone : CG.DEFAULT_ZONE; };
  const label = (a) => `${CG.facilityName(a.facility)} ${CG.zoneLabel(a.facility, a.zone || a.source)} ${kindName(a.kind)}`;

  function newestFirst(a, b) {
    if (a.sort_ts !== b.sort_ts) return a.sort_ts < b.sort_ts ? 1 : -1;
    return a.alarm_id < b.alarm_id ? 1 : -1;
  }

  function lifecycle(a) {
    if (a.resolved_at) return { step: "resolved", text: t("st_resolved", { outcome: t("outcome_" + a.outcome), who: a.resolved_by }) };
    if (a.dispatched_at) return { step: "dispatched", text: t("st_dispatched", { who: a.dispatched_by }) };
    if (a.acked_at) return { step: "acked", text: t("st_acked", { who: a.acked_by }) };
    return { step: "raised", text: t(isDrill(a) ? "st_drill" : "st_raised") };
  }

  // --- cells -------------------------------------------------------------------------------
  function alarmCell(a) {
    const p = CG.placeOf(a.facility);
    const device = p && a.device_id ? p.devices[a.device_id] : null;
    const kind = el("p", { class: "kind" }, kindName(a.kind));
    if (isDrill(a)) kind.append(" ", el("span", { class: "badge drill", text: t("drill") }));
    return [kind,
      el("p", { class: "fac" }, CG.named(CG.facilityName(a.facility), a.facility)),
      el("p", {}, CG.named(CG.zoneLabel(a.facility, a.zone || a.source), a.zone || a.source)),
      device ? el("p", { class: "muted" }, `${device.name} · ${CG.word("deviceKinds", device.kind)}`) : null];
  }

  function placeCell(a) {
    const p = CG.placeOf(a.facility);
    if (!p) return [el("p", { text: "—" })];
    return [el("p", { text: `${p.city} ${p.district} ${p.street}` }), el("p", { text: p.address }),
      p.phone ? el("p", {}, el("a", { href: `tel:${p.phone}`, text: p.phone }), p.contact ? ` ${p.contact}` : "") : null];
  }

  function timesCell(a) {
    const tz = tzOf(a);
    const delivered = a.delivered_at
      ? el("p", {}, `${t("deliveredAt")} ${formatTime(a.delivered_at, true, tz)}`,
        el("small", { class: "muted block", text: t("deliveredVia", { receiver: a.receiver || "—", ms: a.delivery_ms ?? "—" }) }))
      : el("p", { class: "muted", text: t("notDelivered") });
    return [el("p", { title: a.raised_at || "" }, `${t("raisedAt")} ${formatTime(a.raised_at, true, tz)}`), delivered];
  }

  function statusCell(a) {
    const s = lifecycle(a);
    return [el("p", { class: `status st-${s.step}`, text: s.text }),
      a.dispatch_note ? el("p", { class: "note", text: `${t("dispatchNote")}: ${a.dispatch_note}` }) : null,
      el("p", { class: "muted", text: t("onSite", { state: t(a.state) }) })];
  }

  function actionsCell(a) {
    const box = el("div", { class: "actions" });
    const id = a.alarm_id;
    // Dispatch and resolve wait for the acknowledgement; one line beside them says so.
    const why = a.acked_at || a.resolved_at ? null : CG.whyId();
    if (!a.resolved_at) {
      if (!a.acked_at) {
        box.append(el("div", { class: "step" }, button(t("ack"), (ev) => act(ev.currentTarget, a, "ack"),
          { class: "ack", dataset: { action: "ack" }, "aria-label": `${t("ack")}: ${label(a)}` }),
        el("small", { class: "why", id: why, text: t("whyAckFirst") })));
      }
      if (isDrill(a)) {
        box.append(el("p", { class: "drill-note", text: t("drillNoDispatch") }));
      } else if (!a.dispatched_at) {
        const note = el("input", { type: "text", maxlength: "500", class: "note-input", value: noteDraft.get(id) || "",
          dataset: { action: "note" }, placeholder: t("dispatchNoteHint"), "aria-label": `${t("dispatchNote")}: ${label(a)}`,
          oninput: (ev) => noteDraft.set(id, ev.target.value), disabled: !a.acked_at,
          // Enter sends the note, as the dispatch button beside it would.
          onkeydown: (ev) => { if (ev.key === "Enter") { ev.preventDefault(); const b = ev.target.closest(".step").querySelector("button.dispatch"); if (b && !b.disabled) b.click(); } } });
        box.append(el("div", { class: "step" },
          el("label", { class: "inline" }, el("span", { text: t("dispatchNote") }), note),
          CG.disabledFor(button(t("dispatch"), (ev) => act(ev.currentTarget, a, "dispatch"),
            { class: "dispatch", dataset: { action: "dispatch" }, "aria-label": `${t("dispatch")}: ${label(a)}` }), why)));
      }
      const select = el("select", { class: "outcome", dataset: { action: "outcome" }, "aria-label": `${t("outcome")}: ${label(a)}`,
        onchange: (ev) => outcomeChoice.set(id, ev.target.value) });
      for (const o of isDrill(a) ? ["test"] : ["real", "false"]) select.append(el("option", { value: o, text: t("outcome_" + o) }));
      if (outcomeChoice.has(id)) select.value = outcomeChoice.get(id);
      box.append(el("div", { class: "step" },
        el("label", { class: "inline" }, el("span", { text: t("outcome") }), select),
        CG.disabledFor(button(t("resolve"), (ev) => act(ev.currentTarget, a, "resolve"),
          { class: "resolve", dataset: { action: "resolve" }, "aria-label": `${t("resolve")}: ${label(a)}` }), why)));
    }
    box.append(button(t("details"), (ev) => openCard(a, ev.currentTarget),
      { class: "secondary details", dataset: { action: "details" }, "aria-label": `${t("details")}: ${label(a)}` }));
    return box;
  }

  const CELLS = [["colAlarm", "c-alarm", alarmCell], ["colPlace", "c-place", placeCell], ["colTimes", "c-times", timesCell],
    ["colStatus", "c-status", statusCell], ["colActions", "c-actions", actionsCell]];

  function buildRow(a) {
    const step = lifecycle(a).step;
    const tr = el("tr", {
      dataset: { alarmId: a.alarm_id, step },
      class: `alarm kind-${a.kind} step-${step}` + (freshIds.has(a.alarm_id) ? " fresh" : ""),
    });
    for (const [key, cls, fn] of CELLS) {
      const content = fn(a);
      const td = el("td", { class: cls, dataset: { label: key === "colTimes" ? CG.withZone(t(key), tzOf(a)) : t(key) } });
      for (const c of Array.isArray(content) ? content : [content]) if (c) td.append(c);
      tr.append(td);
    }
    return tr;
  }

  function headZone() {
    const zones = new Set([...alarms.values()].map(tzOf));
    return zones.size <= 1 ? [...zones][0] || CG.DEFAULT_ZONE : null;
  }

  function render() {
    const zone = headZone();
    $("alarm-head").replaceChildren(...CELLS.map(([key]) => el("th", { scope: "col",
      text: key === "colTimes" && zone ? CG.withZone(t(key), zone) : t(key) })));
    const body = $("alarm-rows");
    const active = document.activeElement;
    const focusRow = active && active.closest ? active.closest("tr[data-alarm-id]") : null;
    const focus = focusRow ? { id: focusRow.dataset.alarmId, action: active.dataset.action,
      caret: active.selectionStart } : null;
    const lang = `${CG.lang()}/${CG.placesVersion()}`;
    const sorted = [...alarms.values()].sort(newestFirst);
    const keep = new Set(sorted.map((a) => a.alarm_id));
    for (const [id, r] of rows) if (!keep.has(id)) { r.node.remove(); rows.delete(id); }
    let ref = body.firstChild;
    for (const a of sorted) {
      let r = rows.get(a.alarm_id);
      if (!r || r.rec !== a || r.lang !== lang) {
        const node = buildRow(a);
        if (r) {
          if (r.node === ref) ref = node;
          r.node.replaceWith(node);
        }
        r = { rec: a, lang, node };
        rows.set(a.alarm_id, r);
      }
      // Move a row only when it is out of place, so the row being worked on stays put.
      if (r.node === ref) ref = ref.nextSibling;
      else body.insertBefore(r.node, ref);
    }
    freshIds.clear();
    $("empty").hidden = sorted.length > 0;
    $("board").hidden = sorted.length === 0;
    $("unacked-count").textContent = String(sorted.filter((a) => !a.acked_at).length);
    $("load-more").hidden = !nextBefore;
    if (focus && document.activeElement !== active) focusControl(focus.id, [focus.action], focus.caret);
  }

  // Focus the first of `actions` the alarm's row offers (by data-action), else its details button.
  function focusControl(id, actions, caret) {
    const row = $("alarm-rows").querySelector(`tr[data-alarm-id="${id}"]`);
    if (!row) return;
    for (const name of [...actions, "details"]) {
      const node = name && row.querySelector(`[data-action="${name}"]`);
      if (node && !node.disabled) {
        node.focus();
        if (caret !== undefined && caret !== null && node.setSelectionRange) node.setSelectionRange(caret, caret);
        return;
      }
    }
  }

  function matchesFilter() { return !filter.city && !filter.district; }

  function upsert(a, live) {
    const before = alarms.get(a.alarm_id);
    // An older copy arriving late, or the same one again (a list reload): the row stays as it is.
    if (before && before.updated_at >= a.updated_at) return;
    // With a district filter the stream (unfiltered) only refreshes rows already listed.
    if (live && !before && !matchesFilter()) return;
    alarms.set(a.alarm_id, a);
    if (a.resolved_at) { outcomeChoice.delete(a.alarm_id); noteDraft.delete(a.alarm_id); }
    if (live) for (const ids of liveDuringLoads) ids.add(a.alarm_id);
    if (live && !before) {
      freshIds.add(a.alarm_id);
      CG.announce(`${t("newAlarm")}: ${label(a)}`);
      if (a.kind === "panic") beep();
    }
  }

  async function loadList(more) {
    const generation = more ? listGeneration : ++listGeneration;
    const liveIds = new Set();
    liveDuringLoads.add(liveIds);
    try {
      const page = await api("GET", "/api/alarms" + qs({ limit: PAGE_SIZE, city: filter.city, district: filter.district,
        before: more ? nextBefore : null }));
      // Answers are applied as they come, unless a newer list is already on the board: under a
      // stream that keeps reconnecting, waiting for the newest would show nothing at all.
      if (generation < listApplied) return;
      listApplied = generation;
      CG.rememberPlaces(page.places);
      if (!more) for (const id of [...alarms.keys()]) if (!liveIds.has(id)) alarms.delete(id);
      for (const a of page.items) upsert(a, false);
      nextBefore = page.next_before;
      CG.showError("");
      render();
    } catch (err) {
      CG.reportError(err);
    } finally {
      liveDuringLoads.delete(liveIds);
    }
  }

  // Each step, then focus on the next one of the same alarm, and say what was done.
  const NEXT = { ack: ["note", "dispatch", "outcome"], dispatch: ["outcome", "resolve"], resolve: ["details"] };

  async function act(btn, a, action) {
    const id = a.alarm_id;
    let body;
    if (action === "dispatch") body = { note: (noteDraft.get(id) || "").trim() || null };
    if (action === "resolve") body = { outcome: outcomeChoice.get(id) || (isDrill(a) ? "test" : "real") };
    btn.disabled = true;
    try {
      const result = await api("POST", `/api/alarms/${id}/${action}`, body);
      const rec = action === "ack" ? result.alarm : result;
      upsert(rec, false);
      render();
      focusControl(id, NEXT[action]);
      const what = label(rec);
      CG.announce(action === "ack" ? t("didAck", { alarm: what }) : action === "dispatch" ? t("didDispatch", { alarm: what })
        : t("didResolve", { alarm: what, outcome: t("outcome_" + rec.outcome) }), true);
      CG.showError("");
    } catch (err) {
      btn.disabled = false;
      CG.reportError(err, t("ackFailed"));
    }
  }

  // --- facility card -------------------------------------------------------------------
  function field(name, value) {
    return [el("dt", { text: t(name) }), el("dd", {}, value instanceof Node ? value : (value || "—"))];
  }

  function cardFields(a, card) {
    const p = card.place;
    const tz = p.timezone;
    const device = a.device_id ? p.devices[a.device_id] : null;
    return [
      ...field("colFacility", CG.named(p.name, p.facility)),
      ...field("colZone", CG.named(CG.zoneLabel(a.facility, a.zone || a.source), a.zone || a.source)),
      ...(device ? field("device", CG.named(`${device.name} · ${CG.word("deviceKinds", device.kind)}`, a.device_id)) : []),
      ...field("colKind", kindName(a.kind)),
      ...field("district", `${p.province} ${p.city} ${p.district} ${p.street}`),
      ...field("address", p.address),
      ...field("phone", p.phone ? el("a", { href: `tel:${p.phone}`, text: p.phone }) : null),
      ...field("contact", p.contact),
      ...field("coordinates", card.lat !== null && card.lon !== null ? `${card.lat}, ${card.lon}` : null),
      ...field("enrolled", String(card.enrolled)),
      ...field("guards", card.guards.length ? `${card.guards.length}: ${card.guards.join("、")}` : "0"),
      ...field("raisedAt", `${formatTime(a.raised_at, true, tz)}（${CG.zoneName(tz)}）`),
      ...field("deliveredAt", a.delivered_at ? `${formatTime(a.delivered_at, true, tz)} · ${t("deliveredVia",
        { receiver: a.receiver || "—", ms: a.delivery_ms ?? "—" })}` : t("notDelivered")),
      ...field("colStatus", lifecycle(a).text),
      ...(a.dispatch_note ? field("dispatchNote", a.dispatch_note) : []),
    ];
  }

  async function renderCard() {
    const a = cardAlarm && (alarms.get(cardAlarm.alarm_id) || cardAlarm);
    if (!a) return;
    const card = cardAlarm.card;
    if (!card) return;
    $("card-title").textContent = `${t("cardTitle")}: ${card.place.name}`;
    $("card-fields").replaceChildren(...cardFields(a, card));
    const pics = cardAlarm.pictures || [];
    $("card-snapshots").replaceChildren(...(pics.length ? pics.map((pic) => el("figure", {},
      pic.url ? el("img", { src: pic.url, alt: `${t("camera")}: ${card.place.cameras[pic.camera] || pic.camera}` })
        : el("p", { class: "empty", text: t("noSnapshot") }),
      el("figcaption", {}, CG.named(card.place.cameras[pic.camera] || pic.camera, pic.camera))))
      : [el("p", { class: "empty", text: t("noSnapshot") })]));
  }

  async function openCard(a, opener) {
    const mine = { alarm_id: a.alarm_id, facility: a.facility, card: null, pictures: [] };
    cardAlarm = mine;
    $("card-title").textContent = t("cardTitle");
    $("card-fields").replaceChildren();
    $("card-snapshots").replaceChildren();
    CG.openDialog($("card"), opener, () => { cardAlarm = null; closeScene(); CG.announce(t("cardClosed"), true); });
    $("card-title").focus();
    try {
      const card = await api("GET", `/api/dashboard/police-card/${encodeURIComponent(a.facility)}` + qs({ zone: a.zone }));
      if (cardAlarm !== mine) return;
      CG.rememberPlaces({ [a.facility]: card.place });
      mine.card = card;
      mine.pictures = await Promise.all(card.zone_cameras.map(async (camera) => {
        try {
          const blob = await api("GET", `/api/facilities/${encodeURIComponent(a.facility)}/cameras/` +
            `${encodeURIComponent(camera)}/snapshot` + qs({ alarm_id: a.alarm_id }));
          return { camera, url: URL.createObjectURL(blob) };
        } catch (err) {
          return { camera, url: null };
        }
      }));
      if (cardAlarm !== mine) return;
      renderCard();
      openScene(a, card.zone_cameras, () => cardAlarm === mine);
      CG.announce(t("cardOpened", { name: card.place.name }), true);
    } catch (err) {
      CG.reportError(err);
    }
  }

  // The zone's alarm clips (polled until every one has arrived) and its cameras live.
  function openScene(a, cameras, isCurrent) {
    closeScene();
    const live = CGScene.liveButtons($("card-live"), a.facility, cameras);
    $("card-live-buttons").replaceChildren(...live.buttons);
    let timer = null;
    const poll = async () => {
      try {
        const clips = await CGScene.showClips($("card-clips"), a.alarm_id, isCurrent, a.facility);
        if (isCurrent() && (!clips.length || clips.some((c) => !c.complete))) timer = setTimeout(poll, 3000);
      } catch (err) {
        if (isCurrent() && err.status !== 401) timer = setTimeout(poll, 5000);
      }
    };
    poll();
    cardScene = { stop: () => { clearTimeout(timer); live.stopAll(); },
      redraw: () => { clearTimeout(timer); poll(); live.relabel(); } };
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
    if (!names.length) return el("span", { class: "muted", text: t("noPaths") });
    return el("span", { class: "badges" }, ...names.map((n) => el("span", { class: `badge ${r.paths[n] ? "up" : "down"}`,
      text: `${n} ${t(r.paths[n] ? "pathUp" : "pathDown")}` })));
  }

  function makePathsTable() {
    pathsTable = new CG.Table($("paths"), {
      id: "paths-table", csvName: "police-paths.csv", label: "pathsTitle", empty: "emptyDistricts",
      columns: [
        { key: "facility", label: "colFacility", render: (r) => CG.named(r.name, r.facility) },
        { key: "district", label: "district", render: (r) => `${r.city} ${r.district}` },
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
    pathsTable.reload().catch(CG.reportError);
    stop();
    source = CG.stream("/api/alarms/stream", {
      // Refetch on every (re)connection: whatever changed while the stream was down is in the list.
      open: () => loadList(false),
      alarm: (a) => {
        upsert(a, true);
        if (CG.placeOf(a.facility)) render();
        else CG.loadPlaces([a.facility]).catch(() => {}).then(render);
        if (cardAlarm && cardAlarm.alarm_id === a.alarm_id) renderCard();
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
    pathsTable.reload().catch(CG.reportError);
  });
  $("f-clear").addEventListener("click", () => {
    $("f-city").value = $("f-district").value = "";
    filter = { city: "", district: "" };
    loadList(false);
    pathsTable.reload().catch(CG.reportError);
  });
  $("load-more").addEventListener("click", () => loadList(true));
  document.addEventListener("click", unlockAudio, { once: false, capture: true });
  document.addEventListener("keydown", unlockAudio, { capture: true });
  CG.onLanguage(() => {
    if ($("alarm-head")) render();
    renderCard();
    if (cardScene) cardScene.redraw();  // the clips' captions in the new language
  });
  CG.init({ title: "policeTitle", start, stop });
})();

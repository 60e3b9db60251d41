// Inspectors and supervisors: notices for their role (live), inspections from the jurisdiction's
// checklist with findings and photos, rectification review, filing review with the registrations
// still to file, credit records with the rule behind each entry, subsidies and the annual report.
"use strict";

(function () {
  const { $, t, el, button, api, qs, word, formatTime } = CG;
  CG.addText({
    zh: { noticesTitle: "通知", newInspection: "新建督导检查", inspectedOn: "检查日期", departments: "参加部门（逗号分隔）",
      loadChecklist: "载入检查表", createInspection: "保存检查", recordFinding: "记录问题", photo: "照片",
      inspectionsList: "督导检查记录", findingsReview: "整改审核", reviewNote: "审核意见", filingsReview: "备案审核",
      registrationsTitle: "已登记未备案机构", creditTitle: "信用记录", subsidyTitle: "补贴测算", districtPath: "区县（省/市/区县）",
      openReport: "打开报告", inspectionSaved: "检查已保存", findingSaved: "问题已记录", findingsCount: "问题数",
      score: "信用分", level: "等级", entries: "记录数", points: "分值", rule: "规则", source: "依据", summary: "摘要",
      construction: "建设补助（元）", operation: "运营补助（元）", total: "合计（元）", documentsCol: "材料",
      registeredOn: "登记日期", authority: "登记机关", role: "通知对象", evidence: "整改材料", uscc: "统一社会信用代码" },
    en: { noticesTitle: "Notices", newInspection: "New inspection", inspectedOn: "Inspected on",
      departments: "Departments (comma separated)", loadChecklist: "Load checklist", createInspection: "Save inspection",
      recordFinding: "Record finding", photo: "Photo", inspectionsList: "Inspections", findingsReview: "Rectification review",
      reviewNote: "Review note", filingsReview: "Filing review", registrationsTitle: "Registered but not filed",
      creditTitle: "Credit records", subsidyTitle: "Subsidies", districtPath: "District (province/city/district)",
      openReport: "Open report", inspectionSaved: "Inspection saved", findingSaved: "Finding recorded",
      findingsCount: "Findings", score: "Score", level: "Level", entries: "Entries", points: "Points", rule: "Rule",
      source: "Source", summary: "Summary", construction: "Construction (yuan)", operation: "Operation (yuan)",
      total: "Total (yuan)", documentsCol: "Documents", registeredOn: "Registered on", authority: "Registered by",
      role: "Notified", evidence: "Evidence", uscc: "Credit code" },
  });
  let tables = null;
  let source = null;
  let checklist = [];
  let inspection = null;

  const fail = (err) => { if (err.status !== 401) CG.showError(`${t("failed")}: ${err.message}`); };

  async function fetchFile(uploadId) {
    try { CG.saveBlob(await api("GET", `/api/uploads/${uploadId}`), uploadId); } catch (err) { fail(err); }
  }

  const fileLinks = (ids) => el("span", { class: "workflow" },
    ...ids.map((id, i) => button(`${i + 1}`, () => fetchFile(id), { class: "link", "aria-label": `${t("photo")} ${i + 1}` })));

  async function act(btn, method, path, body, after) {
    btn.disabled = true;
    try { await api(method, path, body); CG.announce(t("saved")); await after(); } catch (err) { fail(err); }
    finally { btn.disabled = false; }
  }

  function makeTables() {
    tables = {
      notices: new CG.Table($("notices"), { id: "notices-table", csvName: "notices.csv", columns: [
        { key: "at", label: "when", render: (n) => formatTime(n.at) },
        { key: "kind", label: "kindOf", render: (n) => word("noticeKinds", n.kind) },
        { key: "facility", label: "colFacility", render: (n) => `${n.summary.facility_name || ""} (${n.facility})` },
        { key: "district", label: "district", render: (n) => `${n.city} ${n.district}` }, { key: "role", label: "role" },
        { key: "summary", label: "summary", render: (n) => Object.entries(n.summary)
          .filter(([k]) => k !== "facility_name").map(([k, v]) => `${k}: ${v}`).join("，") },
      ], rowAttrs: (n) => ({ class: n.kind === "incident" ? "breach" : null }),
      load: (cursor) => api("GET", "/api/notices" + qs({ limit: 20, cursor })) }),
      inspections: new CG.Table($("inspections"), { id: "inspections-table", csvName: "inspections.csv", columns: [
        { key: "inspected_on", label: "inspectedOn" }, { key: "facility", label: "colFacility" },
        { key: "kind", label: "kindOf", render: (i) => word("inspectionKinds", i.kind) },
        { key: "departments", label: "departments", render: (i) => i.departments.join("、") },
        { key: "inspector", label: "by" }, { key: "findings", label: "findingsCount", num: true,
          csv: (i) => i.findings.length, render: (i) => button(String(i.findings.length), () => selectInspection(i),
            { class: "link", "aria-label": `${t("recordFinding")}: ${i.facility} ${i.inspected_on}` }) },
      ], load: (cursor) => api("GET", "/api/inspections" + qs({ limit: 20, cursor })) }),
      findings: new CG.Table($("findings"), { id: "findings-table", csvName: "findings.csv", columns: [
        { key: "facility", label: "colFacility" }, { key: "item_text", label: "item" },
        { key: "severity", label: "severity", render: (f) => word("severities", f.severity) },
        { key: "description", label: "description" }, { key: "deadline", label: "deadline" },
        { key: "status", label: "status", render: (f) => word("findingStatus", f.status) },
        { key: "overdue", label: "overdueFlag", render: (f) => (f.overdue ? t("yes") : "") },
        { key: "photos", label: "photo", csv: (f) => f.photos.length, render: (f) => fileLinks(f.photos) },
        { key: "actions", label: "colWorkflow", csv: () => "", render: (f) => (f.status !== "submitted" ? "" :
          el("span", { class: "workflow" },
            button(t("accept"), (ev) => act(ev.target, "POST", `/api/findings/${f.finding_id}/accept`,
              { note: $("review-note").value.trim() || null }, () => tables.findings.refresh()),
              { "aria-label": `${t("accept")}: ${f.facility} ${f.item_id}` }),
            button(t("reopen"), (ev) => act(ev.target, "POST", `/api/findings/${f.finding_id}/reopen`,
              { reason: $("review-note").value.trim() || t("reopen") }, () => tables.findings.refresh()),
              { class: "secondary", "aria-label": `${t("reopen")}: ${f.facility} ${f.item_id}` }))) },
      ], rowAttrs: (f) => ({ class: f.overdue ? "breach" : null }),
      load: async () => ({ items: (await api("GET", "/api/findings" + qs({ status: $("finding-status").value }))).items }) }),
      filings: new CG.Table($("filings"), { id: "filings-table", csvName: "filings.csv", columns: [
        { key: "submitted_at", label: "submittedAt", render: (f) => formatTime(f.submitted_at) },
        { key: "facility", label: "colFacility", render: (f) => `${f.facility_name} (${f.facility})` },
        { key: "kind", label: "kindOf", render: (f) => word("filingKinds", f.kind) },
        { key: "status", label: "status", render: (f) => word("filingStatus", f.status) },
        { key: "documents", label: "documentsCol", csv: (f) => Object.keys(f.documents).join(" "),
          render: (f) => el("span", { class: "workflow" }, ...Object.entries(f.documents).map(([kind, id]) =>
            button(word("documents", kind), () => fetchFile(id), { class: "link" }))) },
        { key: "receipt_number", label: "receipt" },
        { key: "actions", label: "colWorkflow", csv: () => "", render: (f) => (f.status !== "submitted" ? "" :
          el("span", { class: "workflow" },
            button(t("accept"), (ev) => act(ev.target, "POST", `/api/filings/${f.filing_id}/accept`, undefined,
              reloadFilings), { "aria-label": `${t("accept")}: ${f.facility_name}` }),
            button(t("returnFiling"), (ev) => act(ev.target, "POST", `/api/filings/${f.filing_id}/return`,
              { reasons: $("return-reasons").value.split(/[;；\n]/).map((s) => s.trim()).filter(Boolean) },
              reloadFilings), { class: "secondary", "aria-label": `${t("returnFiling")}: ${f.facility_name}` }))) },
      ], load: async () => ({ items: (await api("GET", "/api/filings")).items.filter((f) => f.status !== "accepted") }) }),
      registrations: new CG.Table($("registrations"), { id: "registrations-table", csvName: "unfiled.csv", columns: [
        { key: "name", label: "facilityName" }, { key: "uscc", label: "uscc" },
        { key: "authority", label: "authority" }, { key: "registered_on", label: "registeredOn" },
        { key: "district", label: "district" }, { key: "filing_status", label: "status" },
      ], load: async () => ({ items: (await api("GET", "/api/filings/registrations?unfiled_only=true")).items }) }),
      credit: new CG.Table($("credit"), { id: "credit-table", csvName: "credit.csv", columns: [
        { key: "facility", label: "colFacility", render: (c) => button(`${c.name} (${c.facility})`, () => openCredit(c),
          { class: "link" }) },
        { key: "district", label: "district" }, { key: "score", label: "score", num: true },
        { key: "level", label: "level" }, { key: "entries", label: "entries", num: true },
      ], load: async () => ({ items: (await api("GET", "/api/credit")).items }) }),
      entries: new CG.Table($("credit-entries"), { id: "credit-entries-table", csvName: "credit-entries.csv",
        load: () => null, columns: [
          { key: "at", label: "when", render: (e) => formatTime(e.at) }, { key: "rule_text", label: "rule" },
          { key: "points", label: "points", num: true }, { key: "source", label: "source" },
        ] }),
      subsidies: new CG.Table($("subsidies"), { id: "subsidies-table", csvName: "subsidies.csv", load: () => null, columns: [
        { key: "name", label: "facilityName" }, { key: "district", label: "district" },
        { key: "puhui", label: "puhui", render: (x) => t(x.puhui ? "yes" : "no") },
        { key: "construction_yuan", label: "construction", num: true },
        { key: "operation_yuan", label: "operation", num: true }, { key: "total_yuan", label: "total", num: true },
      ] }),
    };
  }

  async function reloadFilings() { await tables.filings.reload(); await tables.registrations.reload(); }

  async function openCredit(c) {
    try {
      const record = await api("GET", `/api/credit/${encodeURIComponent(c.facility)}`);
      $("credit-entries-title").textContent = `${record.name} · ${t("score")} ${record.score} · ${record.level}`;
      $("credit-entries-title").hidden = false;
      tables.entries.setItems(record.entries);
    } catch (err) { fail(err); }
  }

  function renderChecklist() {
    $("checklist").replaceChildren(...checklist.map((item) => {
      const id = `item-${item.item_id.replace(/\./g, "-")}`;
      const select = el("select", { id, dataset: { item: item.item_id } },
        el("option", { value: "", text: "—" }),
        ...Object.keys(t("results")).map((k) => el("option", { value: k, text: word("results", k) })));
      return el("div", { class: "check-item" }, el("label", { for: id, text: `${item.area} · ${item.text}` }), select,
        el("small", { class: "hint", text: item.source }));
    }));
    $("finding-item").replaceChildren(...checklist.map((i) => el("option", { value: i.item_id, text: `${i.area} · ${i.text}` })));
  }

  async function loadChecklist() {
    const facility = $("insp-facility").value.trim();
    if (!facility) return;
    try {
      checklist = (await api("GET", `/api/inspections/checklist/${encodeURIComponent(facility)}`)).items;
      renderChecklist();
    } catch (err) { fail(err); }
  }

  async function selectInspection(i) {
    inspection = i;
    if (!checklist.length || $("insp-facility").value.trim() !== i.facility) {
      $("insp-facility").value = i.facility;
      await loadChecklist();
    }
    $("finding-form").hidden = false;
    $("finding-result").textContent = `${i.facility} · ${i.inspected_on}`;
    $("finding-description").focus();
  }

  async function createInspection(ev) {
    ev.preventDefault();
    const results = [...$("checklist").querySelectorAll("select")].filter((s) => s.value)
      .map((s) => ({ item_id: s.dataset.item, result: s.value }));
    try {
      const made = await api("POST", "/api/inspections", {
        facility_id: $("insp-facility").value.trim(), kind: $("insp-kind").value, inspected_on: $("insp-date").value,
        departments: $("insp-departments").value.split(/[,，、]/).map((s) => s.trim()).filter(Boolean), results });
      $("inspection-result").textContent = `${t("inspectionSaved")}: ${made.inspection_id}`;
      await tables.inspections.reload();
      await selectInspection(made);
    } catch (err) { fail(err); }
  }

  async function addFinding(ev) {
    ev.preventDefault();
    if (!inspection) return;
    try {
      const photos = [];
      const file = $("finding-photo").files[0];
      if (file) {
        photos.push((await api("POST", "/api/uploads" + qs({ facility_id: inspection.facility, purpose: "photo" }), file)).upload_id);
      }
      await api("POST", `/api/inspections/${inspection.inspection_id}/findings`, {
        item_id: $("finding-item").value, severity: $("finding-severity").value,
        description: $("finding-description").value.trim(), deadline: $("finding-deadline").value, photos });
      $("finding-result").textContent = t("findingSaved");
      $("finding-description").value = "";
      $("finding-photo").value = "";
      await Promise.all([tables.inspections.refresh(), tables.findings.reload()]);
    } catch (err) { fail(err); }
  }

  async function loadSubsidies(ev) {
    if (ev) ev.preventDefault();
    try { tables.subsidies.setItems((await api("GET", "/api/subsidies" + qs({ year: $("subsidy-year").value }))).lines); }
    catch (err) { fail(err); }
  }

  function vocabularies() {
    for (const [id, group] of [["insp-kind", "inspectionKinds"], ["finding-severity", "severities"]]) {
      const chosen = $(id).value;
      CG.options(group, $(id));
      if (chosen) $(id).value = chosen;
    }
    const status = $("finding-status").value || "submitted";
    CG.options("findingStatus", $("finding-status"));
    $("finding-status").value = status;
    if (checklist.length) renderChecklist();
  }

  async function loadAll() {
    const loads = ["notices", "inspections", "findings", "filings", "registrations", "credit"].map((k) => tables[k].reload());
    await Promise.all(loads.map((p) => p.catch((err) => { if (err.status !== 403) throw err; })));
  }

  function start() {
    if (!tables) {
      makeTables();
      vocabularies();
      const today = new Date();
      $("insp-date").value = today.toISOString().slice(0, 10);
      $("subsidy-year").value = $("annual-year").value = today.getFullYear();
    }
    loadAll().then(() => CG.showError("")).catch(fail);
    source = CG.stream("/api/notices/stream", { notice: (n) => {
      CG.announce(`${word("noticeKinds", n.kind)}: ${n.summary.facility_name || n.facility}`);
      tables.notices.reload().catch(() => {});
    }, resync: () => tables.notices.reload().catch(() => {}) });
  }

  function stop() { if (source) { source.close(); source = null; } }

  $("load-checklist").addEventListener("click", loadChecklist);
  $("inspection-form").addEventListener("submit", createInspection);
  $("finding-form").addEventListener("submit", addFinding);
  $("finding-status").addEventListener("change", () => tables.findings.reload().catch(fail));
  $("subsidy-form").addEventListener("submit", loadSubsidies);
  $("subsidy-csv").addEventListener("click", async () => {
    try { CG.saveBlob(await api("GET", "/api/subsidies/export.csv" + qs({ year: $("subsidy-year").value })),
      `subsidies-${$("subsidy-year").value}.csv`); } catch (err) { fail(err); }
  });
  CG.onLanguage(() => { if (tables) vocabularies(); });
  CG.init({ title: "inspectionsTitle", start, stop });
})();

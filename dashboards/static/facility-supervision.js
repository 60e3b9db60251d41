// A facility's side of the supervision loop: its open findings and rectification with evidence,
// its filings (with the reasons of a return, and resubmission), hazard and incident reports
// (counts of children only) and its fee standards against the 普惠 caps.
"use strict";

(function () {
  const { $, t, el, button, api, qs, word, formatTime } = CG;
  CG.addText({
    zh: { backToFacility: "返回本机构安防与设备状态", openFindings: "待整改问题", rectifyDescription: "整改情况",
      evidenceFile: "整改材料（照片或 PDF）", submitRectification: "提交整改", rectify: "整改", filingTitle: "备案",
      newFiling: "提交备案、变更或注销", reason: "事由（变更、注销）", providesMeals: "提供餐饮服务", documentsLegend: "材料",
      number: "编号", validUntil: "有效期至", reportTitle: "安全隐患与事故报告", category: "性质",
      childrenAffected: "涉及婴幼儿人数", actionsTaken: "已采取措施", saveFee: "保存收费标准", effectiveFrom: "执行日期",
      cap: "普惠上限", withinCap: "是否超限", overCap: "超出上限",
      reportHint: "只填写人数，不填写幼儿姓名或证件号码。报告将通知辖区卫生健康和公安部门。", resubmit: "修改后重新提交",
      filingSent: "已提交，等待审核", reportSent: "已报告" },
    en: { backToFacility: "Back to our security and devices", openFindings: "Findings to rectify",
      rectifyDescription: "What was done", evidenceFile: "Evidence (photo or PDF)", submitRectification: "Submit rectification",
      rectify: "Rectify", filingTitle: "Filing", newFiling: "Submit a filing, change or closure",
      reason: "Reason (change, closure)", providesMeals: "Provides meals", documentsLegend: "Documents", number: "Number",
      validUntil: "Valid until", reportTitle: "Hazard and incident reports", category: "Category",
      childrenAffected: "Children affected", actionsTaken: "Actions taken", saveFee: "Save fee", effectiveFrom: "Effective from",
      cap: "Inclusive cap", withinCap: "Over the cap", overCap: "Over the cap",
      reportHint: "Give numbers only, never a child's name or identity number. Health and police of the district are notified.",
      resubmit: "Resubmit corrected", filingSent: "Submitted, waiting for review", reportSent: "Reported" },
  });
  let facilityId = null;
  let tables = null;
  let finding = null;
  let returned = null;
  let fees = [];

  const fail = (node) => (err) => { if (err.status !== 401) node.textContent = `${t("failed")}: ${err.message}`; };

  async function uploadFile(file, purpose) {
    return (await api("POST", "/api/uploads" + qs({ facility_id: facilityId, purpose }), file)).upload_id;
  }

  function makeTables() {
    tables = {
      findings: new CG.Table($("my-findings"), { id: "my-findings-table", csvName: "findings.csv", columns: [
        { key: "item_text", label: "item" }, { key: "area", label: "area" },
        { key: "severity", label: "severity", render: (f) => word("severities", f.severity) },
        { key: "description", label: "description" }, { key: "deadline", label: "deadline" },
        { key: "status", label: "status", render: (f) => word("findingStatus", f.status) },
        { key: "overdue", label: "overdueFlag", render: (f) => (f.overdue ? t("yes") : "") },
        { key: "actions", label: "colWorkflow", csv: () => "", render: (f) => (f.status !== "open" ? "" :
          button(t("rectify"), () => openRectify(f), { "aria-label": `${t("rectify")}: ${f.item_text || f.item_id}` })) },
      ], rowAttrs: (f) => ({ class: f.overdue ? "breach" : null }),
      load: async () => ({ items: (await api("GET", "/api/findings")).items.filter((f) => f.status !== "rectified") }) }),
      filings: new CG.Table($("my-filings"), { id: "my-filings-table", csvName: "filings.csv", columns: [
        { key: "submitted_at", label: "submittedAt", render: (f) => formatTime(f.submitted_at) },
        { key: "kind", label: "kindOf", render: (f) => word("filingKinds", f.kind) },
        { key: "status", label: "status", render: (f) => word("filingStatus", f.status) },
        { key: "receipt_number", label: "receipt" },
        { key: "reasons", label: "reasons", render: (f) => f.reasons.join("；") },
      ], rowAttrs: (f) => ({ class: f.status === "returned" ? "breach" : null }),
      load: async () => {
        const items = (await api("GET", "/api/filings")).items;
        returned = items.find((f) => f.status === "returned") || null;
        $("filing-submit").textContent = t(returned ? "resubmit" : "submit");
        if (returned) fillFiling(returned);
        return { items };
      } }),
      reports: new CG.Table($("my-reports"), { id: "my-reports-table", csvName: "reports.csv", columns: [
        { key: "occurred_at", label: "when", render: (r) => formatTime(r.occurred_at) },
        { key: "kind", label: "kindOf", render: (r) => word("reportKinds", r.kind) },
        { key: "category", label: "category", render: (r) => word("categories", r.category) },
        { key: "children_affected", label: "childrenAffected", num: true },
        { key: "description", label: "description" }, { key: "actions_taken", label: "actionsTaken" },
      ], load: async () => ({ items: (await api("GET", "/api/incidents")).items }) }),
      fees: new CG.Table($("my-fees"), { id: "my-fees-table", csvName: "fees.csv", load: () => null, columns: [
        { key: "class_type", label: "classType", render: (f) => word("classTypes", f.class_type) },
        { key: "service_type", label: "serviceType", render: (f) => word("serviceTypes", f.service_type) },
        { key: "amount_yuan", label: "amountYuan", num: true, render: (f) => `${f.amount_yuan} ${word("feeUnits", f.service_type)}` },
        { key: "effective_from", label: "effectiveFrom" }, { key: "cap_yuan", label: "cap", num: true },
        { key: "within_cap", label: "withinCap", render: (f) => (f.within_cap === false ? t("overCap") : "") },
      ], rowAttrs: (f) => ({ class: f.within_cap === false ? "breach" : null }) }),
    };
  }

  function openRectify(f) {
    finding = f;
    $("rectify-form").hidden = false;
    $("rectify-title").textContent = `${t("rectify")}: ${f.item_text || f.item_id} · ${t("deadline")} ${f.deadline}`;
    $("rectify-description").focus();
  }

  // --- the filing form ----------------------------------------------------------------------
  // Labels named by a vocabulary word (and an optional suffix word): relabelled on a language switch.
  const wordLabel = (attrs, group, key, suffix) => el(attrs.for ? "label" : "span",
    Object.assign({ dataset: { group, key, suffix: suffix || "" } }, attrs));

  function relabel() {
    for (const node of document.querySelectorAll("#filing-form [data-group]")) {
      const d = node.dataset;
      node.textContent = `${word(d.group, d.key)}${d.suffix ? " " + t(d.suffix) : ""}`;
    }
  }

  function buildFilingForm() {
    CG.options("filingKinds", $("filing-kind"));
    const legend = (id) => $(id).querySelector("legend");
    $("filing-services").replaceChildren(legend("filing-services"), ...Object.keys(t("serviceTypes")).map((s) =>
      el("label", {}, el("input", { type: "checkbox", id: `svc-${s}`, value: s }), " ", wordLabel({}, "serviceTypes", s))));
    $("filing-places").replaceChildren(legend("filing-places"), ...Object.keys(t("classTypes")).flatMap((c) => [
      wordLabel({ for: `places-${c}` }, "classTypes", c),
      el("input", { id: `places-${c}`, type: "number", min: "0", max: "1000", value: "0" })]));
    $("filing-licences").replaceChildren(...Object.keys(t("licenceKinds")).flatMap((k) => [
      wordLabel({ for: `lic-${k}-number` }, "licenceKinds", k, "number"), el("input", { id: `lic-${k}-number`, maxlength: "64" }),
      el("label", { for: `lic-${k}-until`, "data-i18n": "validUntil" }), el("input", { id: `lic-${k}-until`, type: "date" })]));
    $("filing-documents").replaceChildren(legend("filing-documents"), ...Object.keys(t("documents")).flatMap((d) => [
      wordLabel({ for: `doc-${d}` }, "documents", d),
      el("input", { id: `doc-${d}`, type: "file", accept: "application/pdf,image/jpeg,image/png" })]));
    relabel();
    for (const node of $("filing-licences").querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  }

  function fillFiling(f) {
    $("filing-kind").value = f.kind;
    $("filing-reason").value = f.reason || "";
    if (!f.details) return;
    $("filing-name").value = f.details.name;
    $("filing-address").value = f.details.address;
    $("filing-meals").checked = f.details.provides_meals;
    for (const s of Object.keys(t("serviceTypes"))) $(`svc-${s}`).checked = f.details.service_types.includes(s);
    for (const c of Object.keys(t("classTypes"))) $(`places-${c}`).value = f.details.places[c] || 0;
    for (const lic of f.details.licences) {
      $(`lic-${lic.kind}-number`).value = lic.number;
      $(`lic-${lic.kind}-until`).value = lic.valid_until;
    }
  }

  async function submitFiling(ev) {
    ev.preventDefault();
    const kind = $("filing-kind").value;
    try {
      const documents = returned ? Object.assign({}, returned.documents) : {};
      for (const d of Object.keys(t("documents"))) {
        const file = $(`doc-${d}`).files[0];
        if (file) documents[d] = await uploadFile(file, "document");
      }
      const body = { kind, documents, reason: $("filing-reason").value.trim() || null };
      if (kind !== "closure") {
        const places = {};
        for (const c of Object.keys(t("classTypes"))) places[c] = Number($(`places-${c}`).value) || 0;
        body.details = {
          name: $("filing-name").value.trim(), address: $("filing-address").value.trim(),
          service_types: Object.keys(t("serviceTypes")).filter((s) => $(`svc-${s}`).checked), places,
          provides_meals: $("filing-meals").checked,
          licences: Object.keys(t("licenceKinds")).filter((k) => $(`lic-${k}-number`).value.trim())
            .map((k) => ({ kind: k, number: $(`lic-${k}-number`).value.trim(), valid_until: $(`lic-${k}-until`).value })),
        };
      }
      if (returned) await api("PUT", `/api/filings/${returned.filing_id}`, body); else await api("POST", "/api/filings", body);
      $("filing-result").textContent = t("filingSent");
      await tables.filings.reload();
    } catch (err) { fail($("filing-result"))(err); }
  }

  async function submitRectification(ev) {
    ev.preventDefault();
    if (!finding) return;
    try {
      const evidence = [await uploadFile($("rectify-evidence").files[0], "evidence")];
      await api("POST", `/api/findings/${finding.finding_id}/rectification`,
        { description: $("rectify-description").value.trim(), evidence });
      $("rectify-result").textContent = t("saved");
      $("rectify-form").hidden = true;
      $("rectify-description").value = "";
      $("rectify-evidence").value = "";
      await tables.findings.reload();
    } catch (err) { fail($("rectify-result"))(err); }
  }

  async function submitReport(ev) {
    ev.preventDefault();
    try {
      await api("POST", "/api/incidents", {
        kind: $("report-kind").value, category: $("report-category").value,
        occurred_at: new Date($("report-when").value).toISOString(), description: $("report-description").value.trim(),
        children_affected: Number($("report-children").value) || 0, actions_taken: $("report-actions").value.trim() });
      $("report-result").textContent = t("reportSent");
      await tables.reports.reload();
    } catch (err) { fail($("report-result"))(err); }
  }

  async function loadFees() {
    const report = await api("GET", `/api/fees/${encodeURIComponent(facilityId)}`);
    fees = report.fees;
    tables.fees.setItems(fees);
  }

  async function saveFee(ev) {
    ev.preventDefault();
    const fee = { class_type: $("fee-class").value, service_type: $("fee-service").value,
      amount_yuan: Number($("fee-amount").value), effective_from: $("fee-from").value };
    const keep = fees.filter((f) => f.class_type !== fee.class_type || f.service_type !== fee.service_type)
      .map(({ class_type, service_type, amount_yuan, effective_from }) => ({ class_type, service_type, amount_yuan, effective_from }));
    try {
      const report = await api("PUT", `/api/fees/${encodeURIComponent(facilityId)}`, { fees: keep.concat([fee]) });
      fees = report.fees;
      tables.fees.setItems(fees);
      $("fee-result").textContent = report.breaches ? `${t("overCap")}: ${report.breaches}` : t("saved");
    } catch (err) { fail($("fee-result"))(err); }
  }

  function vocabularies() {
    for (const [id, group] of [["report-kind", "reportKinds"], ["report-category", "categories"],
      ["fee-class", "classTypes"], ["fee-service", "serviceTypes"]]) {
      const chosen = $(id).value;
      CG.options(group, $(id));
      if (chosen) $(id).value = chosen;
    }
  }

  async function start() {
    if (!tables) {
      makeTables();
      buildFilingForm();
      vocabularies();
      $("fee-from").value = new Date().toISOString().slice(0, 10);
    }
    try {
      facilityId = new URLSearchParams(location.search).get("facility")
        || ((await api("GET", "/api/facilities?limit=1")).items[0] || {}).facility_id;
      await Promise.all([tables.findings.reload(), tables.filings.reload(), tables.reports.reload(), loadFees()]);
      CG.showError("");
    } catch (err) { if (err.status !== 401) CG.showError(err.status === 403 ? t("forbidden") : CG.errorText(err)); }
  }

  $("rectify-form").addEventListener("submit", submitRectification);
  $("filing-form").addEventListener("submit", submitFiling);
  $("report-form").addEventListener("submit", submitReport);
  $("fee-form").addEventListener("submit", saveFee);
  CG.onLanguage(() => {
    if (!tables) return;
    vocabularies();
    const kind = $("filing-kind").value;
    CG.options("filingKinds", $("filing-kind"));
    $("filing-kind").value = kind;
    relabel();
    $("filing-submit").textContent = t(returned ? "resubmit" : "submit");
  });
  CG.init({ title: "facilitySupervisionTitle", start, stop: () => {} });
})();

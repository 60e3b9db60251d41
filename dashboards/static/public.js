// The public register (公示): filed, changed and closed facilities and the announcements, read
// without a token from /api/public only; the same as CSV.
"use strict";

(function () {
  const { $, t, el, qs, word } = CG;
  CG.addText({
    zh: { publicIntro: "依据各地实施方案，卫生健康部门定期公布托育机构备案、变更、注销等信息，接受社会监督。",
      publicList: "备案机构", publicEvents: "备案、变更、注销公告", allStatus: "全部" },
    en: { publicIntro: "Health departments publish the filing, changes and closure of childcare facilities for public scrutiny.",
      publicList: "Filed facilities", publicEvents: "Filings, changes and closures", allStatus: "All" },
  });
  let tables = null;

  async function get(path) {
    const resp = await fetch(path);
    if (!resp.ok) throw new Error(`${resp.status} ${await resp.text()}`);
    return resp.json();
  }

  const list = (items, fn) => items.map(fn).join("；");
  const filters = () => ({ city: $("f-city").value.trim(), district: $("f-district").value.trim(), status: $("f-status").value });

  function makeTables() {
    tables = {
      facilities: new CG.Table($("public-facilities"), { id: "public-table", csvName: "public-facilities.csv", columns: [
        { key: "name", label: "facilityName" },
        { key: "district", label: "district", render: (f) => `${f.province} ${f.city} ${f.district}` },
        { key: "address", label: "address" },
        { key: "status", label: "status", render: (f) => word("publicStatus", f.status) },
        { key: "receipt_number", label: "receipt" },
        { key: "filed_on", label: "filedOn" }, { key: "changed_on", label: "changedOn" }, { key: "closed_on", label: "closedOn" },
        { key: "puhui", label: "puhui", render: (f) => t(f.puhui ? "yes" : "no") },
        { key: "service_types", label: "serviceType", render: (f) => list(f.service_types, (s) => word("serviceTypes", s)) },
        { key: "places", label: "placesByClass",
          render: (f) => list(Object.entries(f.places), ([k, v]) => `${word("classTypes", k)} ${v}`) },
        { key: "fees", label: "fees", render: (f) => list(f.fees, (x) =>
          `${word("classTypes", x.class_type)}${word("serviceTypes", x.service_type)} ${x.amount_yuan} ${word("feeUnits", x.service_type)}`) },
        { key: "licences", label: "licences", render: (f) => list(f.licences, (x) => `${word("licenceKinds", x.kind)} ${x.valid_until}`) },
      ], load: (cursor) => get("/api/public/facilities" + qs(Object.assign(filters(), { limit: 50, cursor }))) }),
      events: new CG.Table($("public-events"), { id: "public-events-table", csvName: "public-events.csv", columns: [
        { key: "on_date", label: "when" }, { key: "event", label: "kindOf", render: (e) => word("publicStatus", e.event) },
        { key: "name", label: "facilityName" }, { key: "district", label: "district", render: (e) => `${e.city} ${e.district}` },
        { key: "receipt_number", label: "receipt" },
      ], load: (cursor) => get("/api/public/events" + qs({ limit: 50, cursor })) }),
    };
  }

  function statusOptions() {
    const chosen = $("f-status").value;
    $("f-status").replaceChildren(el("option", { value: "", text: t("allStatus") }),
      ...Object.keys(t("publicStatus")).map((k) => el("option", { value: k, text: word("publicStatus", k) })));
    $("f-status").value = chosen;
  }

  async function load() {
    try {
      await Promise.all([tables.facilities.reload(), tables.events.reload()]);
      $("public-csv").href = "/api/public/facilities.csv" + qs(filters());
      CG.showError("");
    } catch (err) { CG.showError(CG.errorText(err)); }
  }

  $("public-filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  CG.onLanguage(statusOptions);
  CG.initPublic({ title: "publicTitle", start: () => { makeTables(); statusOptions(); load(); } });
})();

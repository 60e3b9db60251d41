// The annual report of a district and year, laid out for printing (the browser's own print), with
// the same figures as an XLSX workbook from /api/reports/annual.xlsx.
"use strict";

(function () {
  const { $, t, api, qs, formatTime, fmtNumber, fmtPercent } = CG;
  // Labels in the order of the report's figures (the workbook's 汇总 sheet uses the same words).
  const FIGURES = {
    zh: { facilities: "托育机构数", filed_facilities: "已备案机构数", places: "托位数", enrolled: "在托人数",
      population: "常住人口", places_per_1000: "每千人口托位数", places_target: "每千人口托位目标", puhui_places: "普惠托位数",
      puhui_share: "普惠托位占比", inspections: "督导检查次数", findings: "发现问题数", findings_rectified: "已整改问题数",
      rectification_rate: "整改率", rectifications_overdue: "逾期未整改（上报次数）", hazards: "安全隐患报告数",
      incidents: "安全事故数", children_affected: "事故涉及婴幼儿人数", alarms: "报警数（不含演练）",
      alarms_acknowledged: "已确认报警数", ack_median_s: "接警确认中位时间（秒）", ack_p90_s: "接警确认P90（秒）",
      dispatch_median_s: "派警中位时间（秒）", subsidy_construction_yuan: "建设补助（元）",
      subsidy_operation_yuan: "运营补助（元）", subsidy_total_yuan: "补助合计（元）" },
    en: { facilities: "Facilities", filed_facilities: "Filed facilities", places: "Places", enrolled: "Children enrolled",
      population: "Resident population", places_per_1000: "Places per 1,000", places_target: "Target per 1,000",
      puhui_places: "Inclusive places", puhui_share: "Inclusive share", inspections: "Inspections", findings: "Findings",
      findings_rectified: "Findings rectified", rectification_rate: "Rectification rate",
      rectifications_overdue: "Overdue rectifications escalated", hazards: "Hazard reports", incidents: "Incidents",
      children_affected: "Children affected by incidents", alarms: "Alarms (drills excluded)",
      alarms_acknowledged: "Alarms acknowledged", ack_median_s: "Acknowledgement median (s)", ack_p90_s: "Acknowledgement p90 (s)",
      dispatch_median_s: "Dispatch median (s)", subsidy_construction_yuan: "Construction subsidy (yuan)",
      subsidy_operation_yuan: "Operation subsidy (yuan)", subsidy_total_yuan: "Subsidies total (yuan)" },
  };
  CG.addText({
    zh: { figuresTitle: "主要指标", facilitiesTitle: "机构明细", districtPath: "区县（省/市/区县）", indicator: "指标",
      value: "数值", generatedAt: "生成时间", reportOf: "{year} 年度 {district} 托育服务发展情况", creditScore: "信用分",
      subsidyYuan: "补助（元）", findingsCount: "问题数", rectified: "已整改", inspectionsCount: "检查次数", incidentsCount: "事故数" },
    en: { figuresTitle: "Key figures", facilitiesTitle: "Facilities", districtPath: "District (province/city/district)",
      indicator: "Figure", value: "Value", generatedAt: "Generated", reportOf: "Childcare in {district}, {year}",
      creditScore: "Credit score", subsidyYuan: "Subsidies (yuan)", findingsCount: "Findings", rectified: "Rectified",
      inspectionsCount: "Inspections", incidentsCount: "Incidents" },
  });
  let figures = null;
  let rows = null;
  let report = null;

  const RATIOS = new Set(["puhui_share", "rectification_rate"]);
  const show = (key, v) => (RATIOS.has(key) ? fmtPercent(v) : fmtNumber(v));

  function makeTables() {
    figures = new CG.Table($("figures"), { id: "figures-table", csvName: "annual-figures.csv", load: () => null, columns: [
      { key: "label", label: "indicator", render: (r) => FIGURES[CG.lang()][r.key] },
      { key: "value", label: "value", num: true, render: (r) => show(r.key, r.value) },
    ] });
    rows = new CG.Table($("facility-rows"), { id: "annual-facilities-table", csvName: "annual-facilities.csv", load: () => null,
      columns: [
        { key: "name", label: "facilityName" }, { key: "filing_number", label: "receipt" },
        { key: "puhui", label: "puhui", render: (r) => t(r.puhui ? "yes" : "no") },
        { key: "places", label: "places", num: true }, { key: "enrolled", label: "enrolled", num: true },
        { key: "inspections", label: "inspectionsCount", num: true }, { key: "findings", label: "findingsCount", num: true },
        { key: "findings_rectified", label: "rectified", num: true }, { key: "incidents", label: "incidentsCount", num: true },
        { key: "credit_score", label: "creditScore", num: true }, { key: "subsidy_yuan", label: "subsidyYuan", num: true },
      ] });
  }

  function render() {
    if (!report) return;
    const f = report.figures;
    $("report").hidden = false;
    $("report-heading").textContent = t("reportOf", { year: f.year, district: f.district.split("/").join(" ") });
    $("report-generated").textContent = `${t("generatedAt")}: ${formatTime(report.generated_at)}`;
    figures.setItems(Object.keys(FIGURES.zh).map((key) => ({ key, value: f[key] })));
    rows.setItems(report.facilities);
  }

  const params = () => ({ district: $("annual-district").value.trim(), year: $("annual-year").value });

  async function load(ev) {
    if (ev) ev.preventDefault();
    try {
      report = await api("GET", "/api/reports/annual" + qs(params()));
      history.replaceState(null, "", location.pathname + qs(params()));
      render();
      CG.showError("");
    } catch (err) { if (err.status !== 401) CG.showError(CG.errorText(err)); }
  }

  function start() {
    if (!figures) makeTables();
    const q = new URLSearchParams(location.search);
    $("annual-district").value = q.get("district") || $("annual-district").value;
    $("annual-year").value = q.get("year") || new Date().getFullYear();
    if ($("annual-district").value) load();
  }

  $("annual-form").addEventListener("submit", load);
  $("annual-print").addEventListener("click", () => window.print());
  $("annual-xlsx").addEventListener("click", async () => {
    try { CG.saveBlob(await api("GET", "/api/reports/annual.xlsx" + qs(params())), `annual-report-${params().year}.xlsx`); }
    catch (err) { if (err.status !== 401) CG.showError(CG.errorText(err)); }
  });
  CG.onLanguage(render);
  CG.init({ title: "annualTitle", start, stop: () => {} });
})();

// Words the supervision pages share (inspections, the facility's side, the annual report and the
// public page), and small helpers for their vocabularies.
"use strict";

CG.addText({
  zh: {
    inspectionsTitle: "督导检查与备案审核", facilitySupervisionTitle: "本机构整改、备案与报告",
    annualTitle: "托育服务年度报告", publicTitle: "托育机构备案公示",
    classTypes: { infant: "乳儿班", toddler: "托小班", older: "托大班", mixed: "混龄班" },
    serviceTypes: { full_day: "全日托", half_day: "半日托", hourly: "计时托", temporary: "临时托" },
    feeUnits: { full_day: "元/人/月", half_day: "元/人/月", hourly: "元/小时", temporary: "元/天" },
    licenceKinds: { health_evaluation: "卫生评价", fire: "消防", food: "食品经营许可" },
    publicStatus: { filed: "已备案", changed: "已变更", closed: "已注销" },
    findingStatus: { open: "待整改", submitted: "待审核", rectified: "已整改" },
    filingStatus: { submitted: "待审核", returned: "已退回", accepted: "已通过" },
    filingKinds: { initial: "备案", change: "变更", closure: "注销" },
    severities: { minor: "一般", major: "较重", critical: "严重" },
    documents: { business_licence: "法人登记证明", premises: "场地证明", fire_acceptance: "消防验收",
      health_evaluation: "卫生评价报告", food_licence: "食品经营许可证", staff_qualifications: "从业人员资格与健康证明" },
    noticeKinds: { hazard: "安全隐患", incident: "安全事故", rectification_overdue: "逾期未整改" },
    reportKinds: { hazard: "安全隐患", incident: "安全事故" },
    categories: { fire: "消防", injury: "伤害", food: "饮食", illness: "疾病", security: "治安", facility: "设施设备", other: "其他" },
    inspectionKinds: { routine: "日常巡查", joint: "联合执法", special: "专项督导", follow_up: "复查" },
    results: { pass: "合格", fail: "不合格", not_applicable: "不适用" },
    facilityId: "机构编号", facilityName: "机构名称", address: "地址", receipt: "备案回执编号", filedOn: "备案日期",
    changedOn: "变更日期", closedOn: "注销日期", puhui: "普惠", serviceType: "服务类型", placesByClass: "托位（班型）",
    fees: "收费标准", licences: "许可有效期", deadline: "整改期限", severity: "严重程度", description: "说明",
    item: "检查项目", area: "类别", overdueFlag: "逾期", submit: "提交", accept: "通过", reopen: "退回整改",
    returnFiling: "退回", reasons: "退回原因", kindOf: "类别", submittedAt: "提交时间", when: "时间",
    saved: "已保存", failed: "操作失败", year: "年度", downloadCsv: "下载 CSV", downloadXlsx: "下载 XLSX",
    print: "打印", load: "查询", amountYuan: "金额（元）",
  },
  en: {
    inspectionsTitle: "Inspections and filing review", facilitySupervisionTitle: "Our rectification, filing and reports",
    annualTitle: "Annual childcare report", publicTitle: "Public register of filed nurseries",
    classTypes: { infant: "Infant (6-12 m)", toddler: "Toddler (12-24 m)", older: "Older (24-36 m)", mixed: "Mixed" },
    serviceTypes: { full_day: "Full day", half_day: "Half day", hourly: "Hourly", temporary: "Temporary" },
    feeUnits: { full_day: "yuan/child/month", half_day: "yuan/child/month", hourly: "yuan/hour", temporary: "yuan/day" },
    licenceKinds: { health_evaluation: "Health evaluation", fire: "Fire safety", food: "Food licence" },
    publicStatus: { filed: "Filed", changed: "Changed", closed: "Closed" },
    findingStatus: { open: "To rectify", submitted: "To review", rectified: "Rectified" },
    filingStatus: { submitted: "To review", returned: "Returned", accepted: "Accepted" },
    filingKinds: { initial: "Filing", change: "Change", closure: "Closure" },
    severities: { minor: "Minor", major: "Major", critical: "Critical" },
    documents: { business_licence: "Legal registration", premises: "Premises", fire_acceptance: "Fire acceptance",
      health_evaluation: "Health evaluation", food_licence: "Food licence", staff_qualifications: "Staff qualifications" },
    noticeKinds: { hazard: "Hazard", incident: "Incident", rectification_overdue: "Rectification overdue" },
    reportKinds: { hazard: "Hazard", incident: "Incident" },
    categories: { fire: "Fire", injury: "Injury", food: "Food", illness: "Illness", security: "Security",
      facility: "Premises", other: "Other" },
    inspectionKinds: { routine: "Routine", joint: "Joint", special: "Special", follow_up: "Follow-up" },
    results: { pass: "Pass", fail: "Fail", not_applicable: "N/A" },
    facilityId: "Facility id", facilityName: "Facility", address: "Address", receipt: "Filing receipt", filedOn: "Filed on",
    changedOn: "Changed on", closedOn: "Closed on", puhui: "Inclusive", serviceType: "Service", placesByClass: "Places by class",
    fees: "Fees", licences: "Licences valid until", deadline: "Deadline", severity: "Severity", description: "Description",
    item: "Checklist item", area: "Area", overdueFlag: "Overdue", submit: "Submit", accept: "Accept", reopen: "Reopen",
    returnFiling: "Return", reasons: "Reasons", kindOf: "Kind", submittedAt: "Submitted", when: "When",
    saved: "Saved", failed: "Failed", year: "Year", downloadCsv: "Download CSV", downloadXlsx: "Download XLSX",
    print: "Print", load: "Load", amountYuan: "Amount (yuan)",
  },
});

// <option>s of a vocabulary, in its order.
CG.options = (group, select) => select.replaceChildren(
  ...Object.keys(CG.t(group)).map((k) => CG.el("option", { value: k, text: CG.word(group, k) })));
// Saves a Blob the API returned (a CSV or a workbook) under `name`.
CG.saveBlob = (blob, name) => {
  const a = CG.el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
};

// What every dashboard page shares: words in Chinese and English, the token kept for the browser
// session, API calls, the live event stream, names of places, times in the facility's zone, paged
// tables with CSV export, small SVG charts, dialogs and announcements.
// Vanilla JS with no build step, so the pages work on an intranet without any CDN.
"use strict";

window.CG = (function () {
  const TOKEN_KEY = "careguard.token";
  const LANG_KEY = "careguard.lang";
  // Facilities on the platform are in China; a facility's own zone (from its place) wins.
  const DEFAULT_ZONE = "Asia/Shanghai";

  const TEXT = {
    zh: {
      logout: "退出", loginTitle: "请输入访问令牌", tokenLabel: "访问令牌", loginButton: "进入",
      langSwitch: "English", langSwitchLang: "en", signedIn: "当前用户",
      live: "实时", reconnecting: "重连中", offline: "未连接", polling: "定时刷新",
      badToken: "令牌无效或已过期，请重新输入",
      forbidden: "此令牌无权查看本页，请输入本页角色的令牌（如公安、卫健、监管或机构令牌）",
      loadFailed: "加载失败",
      noData: "暂无数据", prev: "上一页", next: "下一页", csv: "导出 CSV",
      page: "第 {n} 页", yes: "是", no: "否", close: "关闭", updated: "更新于", closed: "已关闭",
      policeTitle: "托育机构报警 · 公安接警台", healthTitle: "托育机构卫生保健监测", supervisionTitle: "托育服务监管",
      facilityTitle: "本机构安防与设备状态", scrollRegion: "{name}（可左右滚动）",
      // police
      boardTitle: "实时报警", unacked: "待确认", empty: "暂无报警。新报警会自动出现在此，并有提示音。",
      colAlarm: "报警", colPlace: "地点与联系", colTimes: "时间", colStatus: "状态", colActions: "处置",
      colFacility: "机构", colZone: "区域", colKind: "类型", colRaised: "报警时间",
      colDelivered: "送达公安时间", colDeliveryMs: "送达耗时 (ms)", colState: "状态", colWorkflow: "处置",
      raisedAt: "报警", deliveredAt: "送达公安", deliveredVia: "经 {receiver}，{ms} ms", notDelivered: "尚未送达公安",
      ack: "确认", ackedBy: "已确认", active: "报警中", cleared: "已消除", onSite: "现场：{state}",
      st_raised: "报警中，待确认", st_acked: "已确认 · {who}", st_dispatched: "已派警 · {who}",
      st_resolved: "已结案 · {outcome} · {who}", st_drill: "演练，待确认",
      ackFailed: "操作失败", newAlarm: "新报警", dispatch: "派警", dispatchedBy: "已派警",
      dispatchNote: "派警说明", dispatchNoteHint: "如：派出所、警车、警员",
      resolve: "结案", outcome: "结论", outcome_real: "真实警情", outcome_false: "误报", outcome_test: "演练",
      resolvedAs: "已结案", drill: "演练", drillNoDispatch: "演练报警，不派警", details: "详情",
      whyAckFirst: "须先确认报警，才能派警或结案", whyBusy: "正在提交…",
      didAck: "已确认：{alarm}", didDispatch: "已派警：{alarm}", didResolve: "已结案（{outcome}）：{alarm}",
      cardOpened: "机构信息：{name}", cardClosed: "已关闭机构信息",
      filterCity: "城市", filterDistrict: "区县", applyFilter: "筛选", clearFilter: "清除", loadMore: "加载更多",
      cardTitle: "机构信息", address: "地址", coordinates: "坐标", contact: "联系人", phone: "电话",
      enrolled: "在托幼儿", guards: "保安", snapshots: "区域摄像机最新画面", noSnapshot: "无画面",
      pathsTitle: "公安联网链路状态", heartbeat: "最近心跳", paths: "链路", linkDown: "链路中断报警",
      pathUp: "正常", pathDown: "中断", noPaths: "网关尚未上报链路状态（由机构网关自动上报）",
      soundHint: "点击或按键后启用报警提示音", device: "设备", history: "处置记录", sceneTitle: "报警录像与实时画面",
      // health
      roomsTitle: "室内环境（GB/T 18883）", metric: "指标", latest: "最新值", limits: "限值",
      inRange: "达标", breachSince: "超标起始", chart: "曲线", chartTitle: "曲线", h24: "24 小时", d7: "7 天",
      checksTitle: "今日晨午检", className: "班级", classType: "班型", morningDone: "晨检", noonDone: "午检",
      missingAfter10: "10点后未晨检", clustersTitle: "症状聚集", symptom: "症状", count: "人数", firstAt: "首次",
      lastAt: "最近", certsTitle: "即将到期的健康证", staffId: "员工", role: "岗位", certKind: "证件",
      expiresOn: "到期日", status: "状态", cert_ok: "有效", cert_expiring: "即将到期", cert_expired: "已过期",
      emptyRooms: "暂无室内环境读数：机构网关接入温度、湿度、二氧化碳传感器后自动上报。",
      emptyChecks: "今日暂无晨午检班级：由机构在托育管理中登记班级名册与晨午检。",
      emptyClusters: "近 7 天未发现症状聚集（同班 48 小时内 3 名及以上幼儿相同症状时出现在此）。",
      emptyCerts: "30 天内没有到期的健康证。证件由机构或卫健部门录入。",
      emptySeries: "此时段内没有读数。",
      // supervision
      deadLettersTitle: "拒收消息（按机构）", deadLetters: "拒收条数",
      districtTitle: "各区县合规情况", district: "区县", city: "城市", facilities: "机构数", compliant: "合规",
      warning: "预警", non_compliant: "不合规", facilityFindings: "机构检查结果", score: "得分",
      findings: "问题", rule: "规则", level: "级别", message: "说明", source: "依据", placesTitle: "每千人口托位数",
      target: "目标", population: "人口", places: "托位", placesPer1000: "每千人托位", puhuiShare: "普惠占比",
      occupancy: "入托率", camerasOnline: "摄像机在线率", retentionOk: "录像保存达标率", responseTitle: "接警响应时间（30 天）",
      alarms: "报警数", acknowledged: "已确认", dispatched: "已派警", ackMedian: "确认中位 (s)", ackP90: "确认 P90 (s)",
      dispatchMedian: "派警中位 (s)", recentAlarms: "最新报警", back: "返回", breach: "违规",
      emptyPopulation: "缺少区县常住人口，无法计算每千人口托位数：由监管部门录入（统计 › 区县人口）。",
      emptyDistricts: "尚无备案机构：由管理员在机构登记中录入。", emptyFindings: "没有问题：各项检查均合规。",
      emptyResponse: "30 天内没有需要公安处置的报警。", emptyRecent: "暂无报警。", noCameraData: "尚无摄像机上报",
      // facility
      name: "名称", overview: "总览", gateway: "网关", online: "在线", offlineState: "离线", lastSeen: "最近上报",
      activeAlarms: "未消除报警", zonesTitle: "防区", latched: "锁定", armed: "布防", disarmed: "撤防",
      arm: "布防", disarm: "撤防", mode: "模式", devicesTitle: "设备", camerasTitle: "摄像机与录像",
      camera: "摄像机", fps: "帧率 (fps)", frameAge: "画面延迟 (s)", quality: "连接质量", fault: "故障",
      achievedDays: "已保存天数", requiredDays: "要求天数", retention: "录像保存", eventsTitle: "布撤防记录",
      time: "时间", by: "操作人", refused: "被拒绝", drillTitle: "报警演练", drillZone: "演练防区",
      drillButton: "发起演练", drillSent: "演练指令已发送", drillHint: "演练报警以“测试”送达公安，不会派警。",
      facilityAlarms: "本机构报警", commandSent: "指令已发送", commandFailed: "指令失败", kind: "类型",
      emptyCameras: "尚未登记摄像机：由管理员在机构登记中添加，网关配置中接入视频流。",
      emptyEvents: "暂无布撤防记录。", emptyZones: "网关尚未上报防区。", emptyDevices: "尚未登记设备。",
      daysRequired: "{days} 天",
      kinds: {
        panic: "一键报警", intrusion: "入侵", fire: "火警", tamper: "防拆", camera_fault: "摄像机故障",
        retention_breach: "录像保存不足", sensor_range: "传感器超限", device_offline: "设备离线",
        gateway_offline: "网关离线", police_link_down: "公安链路中断", symptom_cluster: "症状聚集", test: "测试",
        video_platform_down: "视频联网中断",
      },
      deviceKinds: {
        panic_button: "一键报警按钮", door: "门磁", pir: "红外探测器", smoke: "烟感", temperature: "温度传感器",
        humidity: "湿度传感器", co2: "二氧化碳传感器", siren: "声光报警器", other: "其他设备",
      },
      metrics: { temperature: "温度", humidity: "相对湿度", co2: "二氧化碳" },
      classTypes: { infant: "乳儿班", toddler: "托小班", older: "托大班", mixed: "混龄班" },
      symptoms: { fever: "发热", cough: "咳嗽", rash: "皮疹", vomiting: "呕吐", diarrhoea: "腹泻", eye_redness: "眼红",
        hfmd_signs: "手足口病症状" },
      staffRoles: { director: "园长", carer: "保育员", health_worker: "卫生保健人员", security: "保安", cook: "厨师",
        other: "其他" },
      documents: { health_certificate: "健康证", yearly_check: "年度体检", training: "培训证明" },
      licences: { health_evaluation: "卫生评价", fire: "消防", food: "食品经营" },
      filing: { unfiled: "未备案", pending: "备案中", filed: "已备案", revoked: "已撤销" },
      cameraStates: { connecting: "连接中", streaming: "正常", stalled: "卡顿", stopped: "已停止" },
      cameraFaults: { offline: "离线", frozen: "画面冻结", covered: "遮挡", defocused: "失焦", displaced: "移位" },
      modes: { schedule: "按时段", manual: "手动", command: "远程指令" },
      levels: { breach: "违规", warning: "预警" },
      rules: {
        retention: "录像保存", arming_24h: "24小时设防", children_areas_covered: "幼儿区域视频覆盖",
        monthly_drill: "每月报警演练", class_size: "班级规模", carer_ratio: "保育人员配比",
        enrolment_within_capacity: "收托不超备案托位", licences: "许可证件", filing: "备案",
        roster_class_size: "名册班级规模", roster_carer_ratio: "在岗保育人员配比", morning_checks: "晨检",
        staff_health: "工作人员健康证", drill_ledger: "报警演练台账", police_path_encrypted: "报警通道加密",
        video_networked: "视频与公安联网", rectification_overdue: "整改逾期", fee_cap: "普惠收费上限",
      },
      services: { full_day: "全日托", half_day: "半日托", hourly: "计时托", temporary: "临时托" },
      findingText: {
        "retention.no_report": "网关未上报录像保存情况",
        "retention.short": "摄像机“{camera}”：录像连续保存 {days} 天，要求 {required} 天",
        "retention.cameras_absent": "录像保存报告缺少摄像机：{cameras}",
        "retention.building_up": "摄像机“{camera}”：录像无中断，已积累 {days} 天，尚未达到要求的 {required} 天",
        "arming_24h.no_button": "未登记一键报警按钮",
        "arming_24h.never_reported": "负责24小时防区的网关从未上报",
        "arming_24h.silent": "负责24小时防区的网关已 {seconds} 秒未上报（至多 {max} 秒）",
        "children_areas_covered.no_area": "未登记幼儿活动区域",
        "children_areas_covered.no_camera": "幼儿区域“{area}”没有摄像机覆盖",
        "children_areas_covered.none_online": "幼儿区域“{area}”的摄像机（{cameras}）均不在线",
        "monthly_drill.never": "尚无报警演练送达公安",
        "monthly_drill.overdue": "上次演练送达公安已过 {days} 天（至多 {max} 天）",
        "class_size.over_cap": "{class}（{class_type}）：{children} 名幼儿，至多 {cap} 名",
        "carer_ratio.too_few": "{class}（{class_type}）：{children} 名幼儿仅 {carers} 名保育人员，至少 1:{ratio}",
        "enrolment_within_capacity.over_places": "{class}：收托 {children} 名，备案托位 {places} 个",
        "licences.missing": "缺少{licence}许可",
        "licences.expired": "{licence}许可 {number} 已于 {date} 过期",
        "licences.expiring": "{licence}许可 {number} 将于 {date} 到期（剩 {days} 天）",
        "filing.not_filed": "备案状态：{status}",
        "roster_class_size.over_cap": "{class}（{class_type}）：名册 {children} 名幼儿，至多 {cap} 名",
        "roster_class_size.over_places": "{class}：名册 {children} 名幼儿，备案托位 {places} 个",
        "roster_carer_ratio.too_few": "{class}（{class_type}）：{children} 名幼儿仅 {carers} 名在岗保育人员，至少 1:{ratio}",
        "morning_checks.missing": "{class}：{day} {deadline} 前未完成晨检",
        "staff_health.no_certificate": "{staff}：未录入健康证",
        "staff_health.expired": "{staff}：{document}已于 {date} 过期",
        "staff_health.expiring": "{staff}：{document}将于 {date} 到期（剩 {days} 天）",
        "drill_ledger.facility_month": "{month} 没有报警演练送达公安",
        "drill_ledger.button_month": "一键报警“{button}”：{month} 没有演练送达公安",
        "police_path_encrypted.plain": "与公安联网的报警通道未加密：报警可被伪造或压制",
        "video_networked.not_reported": "网关未上报 GB/T 28181 注册：视频未与公安联网",
        "video_networked.not_registered": "未注册到公安视频平台 {platform}：{reason}",
        "video_networked.areas_unseen": "公安联网摄像机看不到的幼儿区域：{areas}",
        "rectification_overdue.past_deadline": "检查问题 {finding}（{item}，{severity}）：{date} 前未整改",
        "fee_cap.over_cap": "{class_type} {service}：{amount} {unit}，超过普惠上限 {cap}",
        // A gateway's refusal of a zone command (contracts ZoneRefusal).
        "arming.unknown_zone": "无此防区：{zone}",
        "arming.not_latched": "防区“{zone}”未锁定，无需复位",
        "arming.cannot_disarm": "防区“{zone}”为24小时{zone_kind}防区，不能撤防",
        "arming.no_arming": "防区“{zone}”（{zone_kind}）没有布撤防",
        "arming.unknown_action": "未知操作：{action}",
        "arming.unknown_device": "设备“{device}”不属于任何防区",
      },
      zoneKinds: { panic: "一键报警", intrusion: "入侵", fire: "火警", environment: "环境监测" },
      listSep: "、",
      videoPlatform: "视频联网（GB/T 28181）", vpRegistered: "已注册", vpDown: "未注册",
    },
    en: {
      logout: "Sign out", loginTitle: "Enter your access token", tokenLabel: "Access token", loginButton: "Open",
      langSwitch: "中文", langSwitchLang: "zh-CN", signedIn: "Signed in",
      live: "Live", reconnecting: "Reconnecting", offline: "Offline", polling: "Auto refresh",
      badToken: "Token invalid or expired, enter it again",
      forbidden: "This token may not view this page: enter a token of this page's role (police, health, supervisor or facility)",
      loadFailed: "Loading failed", noData: "No data",
      prev: "Previous", next: "Next", csv: "Export CSV", page: "Page {n}", yes: "Yes", no: "No", close: "Close",
      updated: "Updated", closed: "Closed",
      policeTitle: "Nursery alarms · Police desk", healthTitle: "Nursery health monitoring",
      supervisionTitle: "Childcare supervision", facilityTitle: "Our security and devices",
      scrollRegion: "{name} (scrolls sideways)",
      boardTitle: "Live alarms", unacked: "Unacknowledged", empty: "No alarms. New alarms appear here by themselves, with a sound.",
      colAlarm: "Alarm", colPlace: "Place and contact", colTimes: "Times", colStatus: "Status", colActions: "Response",
      colFacility: "Facility", colZone: "Zone", colKind: "Kind", colRaised: "Raised",
      colDelivered: "Delivered to police", colDeliveryMs: "Delivery (ms)", colState: "State", colWorkflow: "Response",
      raisedAt: "Raised", deliveredAt: "At police", deliveredVia: "via {receiver}, {ms} ms", notDelivered: "Not yet at the police",
      ack: "Acknowledge", ackedBy: "Acknowledged", active: "Active", cleared: "Cleared", onSite: "On site: {state}",
      st_raised: "Raised, awaiting acknowledgement", st_acked: "Acknowledged · {who}", st_dispatched: "Dispatched · {who}",
      st_resolved: "Resolved · {outcome} · {who}", st_drill: "Drill, awaiting acknowledgement",
      ackFailed: "Action failed", newAlarm: "New alarm", dispatch: "Dispatch", dispatchedBy: "Dispatched",
      dispatchNote: "Dispatch note", dispatchNoteHint: "e.g. station, car, officer",
      resolve: "Resolve", outcome: "Outcome", outcome_real: "Real", outcome_false: "False alarm", outcome_test: "Drill",
      resolvedAs: "Resolved", drill: "Drill", drillNoDispatch: "Drill: never dispatched", details: "Details",
      whyAckFirst: "Acknowledge the alarm first, then dispatch or resolve", whyBusy: "Sending…",
      didAck: "Acknowledged: {alarm}", didDispatch: "Dispatched: {alarm}", didResolve: "Resolved ({outcome}): {alarm}",
      cardOpened: "Facility: {name}", cardClosed: "Facility card closed",
      filterCity: "City", filterDistrict: "District", applyFilter: "Filter", clearFilter: "Clear",
      loadMore: "Load more", cardTitle: "Facility", address: "Address", coordinates: "Coordinates",
      contact: "Contact", phone: "Phone", enrolled: "Children enrolled", guards: "Guards",
      snapshots: "Latest pictures of the zone", noSnapshot: "No picture", pathsTitle: "Police link state",
      heartbeat: "Last heartbeat", paths: "Paths", linkDown: "Link-down alarms", pathUp: "up", pathDown: "down",
      noPaths: "The gateway has not reported its police links yet (it does so by itself)",
      soundHint: "Click or press a key to enable the alarm sound", device: "Device", history: "History",
      sceneTitle: "Alarm clips and live view",
      roomsTitle: "Room climate (GB/T 18883)", metric: "Metric", latest: "Latest", limits: "Limits",
      inRange: "In range", breachSince: "Out of range since", chart: "Chart", chartTitle: "Chart", h24: "24 hours",
      d7: "7 days", checksTitle: "Today's morning and noon checks", className: "Class", classType: "Class type",
      morningDone: "Morning", noonDone: "Noon", missingAfter10: "Morning missing after 10:00",
      clustersTitle: "Symptom clusters", symptom: "Symptom", count: "Children", firstAt: "First", lastAt: "Last",
      certsTitle: "Health certificates expiring", staffId: "Staff", role: "Role", certKind: "Certificate",
      expiresOn: "Expires", status: "Status", cert_ok: "Valid", cert_expiring: "Expiring", cert_expired: "Expired",
      emptyRooms: "No room readings yet: they arrive once the gateway has temperature, humidity or CO₂ sensors.",
      emptyChecks: "No class has checks today: the facility files class rosters and morning/noon checks.",
      emptyClusters: "No symptom cluster in 7 days (3 or more children of one class with one symptom within 48 h).",
      emptyCerts: "No certificate expires within 30 days. Facilities or the health authority enter them.",
      emptySeries: "No readings in this span.",
      deadLettersTitle: "Refused messages by facility", deadLetters: "Refused",
      districtTitle: "Compliance by district", district: "District", city: "City", facilities: "Facilities",
      compliant: "Compliant", warning: "Warning", non_compliant: "Non-compliant", facilityFindings: "Facility findings",
      score: "Score", findings: "Findings", rule: "Rule", level: "Level", message: "Message", source: "Source",
      placesTitle: "Places per 1,000 people", target: "Target", population: "Population", places: "Places",
      placesPer1000: "Places / 1,000", puhuiShare: "Inclusive share", occupancy: "Occupancy",
      camerasOnline: "Cameras online", retentionOk: "Retention compliant", responseTitle: "Alarm response (30 days)",
      alarms: "Alarms", acknowledged: "Acknowledged", dispatched: "Dispatched", ackMedian: "Ack median (s)",
      ackP90: "Ack p90 (s)", dispatchMedian: "Dispatch median (s)", recentAlarms: "Latest alarms", back: "Back",
      breach: "Breach",
      emptyPopulation: "District populations are missing, so places per 1,000 cannot be computed: supervisors enter them (Statistics › district population).",
      emptyDistricts: "No facility filed yet: an administrator files them in the registry.",
      emptyFindings: "No findings: every check passes.", emptyResponse: "No alarm for the police in 30 days.",
      emptyRecent: "No alarms yet.", noCameraData: "no camera reported yet",
      name: "Name", overview: "Overview", gateway: "Gateway", online: "Online", offlineState: "Offline", lastSeen: "Last seen",
      activeAlarms: "Active alarms", zonesTitle: "Zones", latched: "Latched", armed: "Armed", disarmed: "Disarmed",
      arm: "Arm", disarm: "Disarm", mode: "Mode", devicesTitle: "Devices", camerasTitle: "Cameras and recordings",
      camera: "Camera", fps: "Frame rate (fps)", frameAge: "Frame age (s)", quality: "Link quality", fault: "Fault",
      achievedDays: "Days kept", requiredDays: "Days required", retention: "Retention", eventsTitle: "Arming events",
      time: "Time", by: "By", refused: "Refused", drillTitle: "Alarm drill", drillZone: "Drill zone",
      drillButton: "Start drill", drillSent: "Drill command sent",
      drillHint: "A drill reaches the police as a test and is never dispatched.", facilityAlarms: "Our alarms",
      commandSent: "Command sent", commandFailed: "Command failed", kind: "Kind",
      emptyCameras: "No camera registered: an administrator adds them to the facility, and the gateway's configuration names their streams.",
      emptyEvents: "No arming events yet.", emptyZones: "The gateway has not reported its zones yet.",
      emptyDevices: "No device registered.", daysRequired: "{days} days",
      kinds: {
        panic: "Panic button", intrusion: "Intrusion", fire: "Fire", tamper: "Tamper", camera_fault: "Camera fault",
        retention_breach: "Recording retention short", sensor_range: "Sensor out of range",
        device_offline: "Device offline", gateway_offline: "Gateway offline", police_link_down: "Police link down",
        symptom_cluster: "Symptom cluster", test: "Test", video_platform_down: "Police video platform lost",
      },
      deviceKinds: {
        panic_button: "Panic button", door: "Door contact", pir: "Motion detector", smoke: "Smoke detector",
        temperature: "Temperature sensor", humidity: "Humidity sensor", co2: "CO₂ sensor", siren: "Siren", other: "Other device",
      },
      metrics: { temperature: "Temperature", humidity: "Relative humidity", co2: "CO₂" },
      classTypes: { infant: "Infant class", toddler: "Toddler class", older: "Older toddler class", mixed: "Mixed-age class" },
      symptoms: { fever: "Fever", cough: "Cough", rash: "Rash", vomiting: "Vomiting", diarrhoea: "Diarrhoea",
        eye_redness: "Red eyes", hfmd_signs: "Hand-foot-mouth signs" },
      staffRoles: { director: "Director", carer: "Carer", health_worker: "Health worker", security: "Guard", cook: "Cook",
        other: "Other" },
      documents: { health_certificate: "Health certificate", yearly_check: "Yearly check", training: "Training record" },
      licences: { health_evaluation: "Health evaluation", fire: "Fire safety", food: "Food business" },
      filing: { unfiled: "not filed", pending: "pending", filed: "filed", revoked: "revoked" },
      cameraStates: { connecting: "Connecting", streaming: "Streaming", stalled: "Stalled", stopped: "Stopped" },
      cameraFaults: { offline: "Offline", frozen: "Frozen picture", covered: "Covered", defocused: "Out of focus",
        displaced: "Displaced" },
      modes: { schedule: "Schedule", manual: "Manual", command: "Remote command" },
      levels: { breach: "Breach", warning: "Warning" },
      rules: {
        retention: "Footage retention", arming_24h: "24-hour arming", children_areas_covered: "Children's areas on camera",
        monthly_drill: "Monthly alarm drill", class_size: "Class size", carer_ratio: "Carer ratio",
        enrolment_within_capacity: "Enrolment within filed places", licences: "Licences", filing: "Filing",
        roster_class_size: "Class size on the roster", roster_carer_ratio: "Carers on duty", morning_checks: "Morning checks",
        staff_health: "Staff health certificates", drill_ledger: "Drill ledger",
        police_path_encrypted: "Police path encrypted", video_networked: "Video networked with the police",
        rectification_overdue: "Rectification overdue", fee_cap: "Inclusive fee cap",
      },
      services: { full_day: "Full day", half_day: "Half day", hourly: "Hourly", temporary: "Temporary" },
      findingText: {
        "retention.no_report": "The gateway has not reported its footage retention",
        "retention.short": "Camera “{camera}”: {days} days of unbroken footage, {required} required",
        "retention.cameras_absent": "Cameras missing from the retention report: {cameras}",
        "retention.building_up": "Camera “{camera}”: {days} days of footage without a gap, building up to the {required} required",
        "arming_24h.no_button": "No panic button registered",
        "arming_24h.never_reported": "The gateway watching the 24-hour zones has never reported",
        "arming_24h.silent": "The gateway watching the 24-hour zones has been silent for {seconds} s (at most {max} s)",
        "children_areas_covered.no_area": "No children's area registered",
        "children_areas_covered.no_camera": "Children's area “{area}”: no camera covers it",
        "children_areas_covered.none_online": "Children's area “{area}”: none of its cameras ({cameras}) is online",
        "monthly_drill.never": "No alarm drill has reached the police yet",
        "monthly_drill.overdue": "The last drill reached the police {days} days ago (at most {max})",
        "class_size.over_cap": "{class} ({class_type}): {children} children, at most {cap}",
        "carer_ratio.too_few": "{class} ({class_type}): {children} children for {carers} carer(s), at least 1:{ratio}",
        "enrolment_within_capacity.over_places": "{class}: {children} enrolled, {places} places filed",
        "licences.missing": "No {licence} licence on file",
        "licences.expired": "{licence} licence {number} expired on {date}",
        "licences.expiring": "{licence} licence {number} expires on {date} ({days} days left)",
        "filing.not_filed": "Filing status: {status}",
        "roster_class_size.over_cap": "{class} ({class_type}): {children} children on the roster, at most {cap}",
        "roster_class_size.over_places": "{class}: {children} children on the roster, {places} places filed",
        "roster_carer_ratio.too_few": "{class} ({class_type}): {children} children for {carers} carer(s) on duty, at least 1:{ratio}",
        "morning_checks.missing": "{class}: no morning check by {deadline} on {day}",
        "staff_health.no_certificate": "{staff}: no health certificate on file",
        "staff_health.expired": "{staff}: {document} expired on {date}",
        "staff_health.expiring": "{staff}: {document} expires on {date} ({days} days left)",
        "drill_ledger.facility_month": "No alarm drill reached the police in {month}",
        "drill_ledger.button_month": "Panic button “{button}”: no drill reached the police in {month}",
        "police_path_encrypted.plain": "The alarm path to the police is not encrypted: alarms can be forged or suppressed",
        "video_networked.not_reported": "The gateway reports no GB/T 28181 registration: video is not networked with the police",
        "video_networked.not_registered": "Not registered with the police video platform {platform}: {reason}",
        "video_networked.areas_unseen": "Children's areas no camera networked with the police sees: {areas}",
        "rectification_overdue.past_deadline": "Inspection finding {finding} ({item}, {severity}): not rectified by {date}",
        "fee_cap.over_cap": "{class_type} {service}: {amount} {unit}, over the inclusive cap of {cap}",
        // A gateway's refusal of a zone command (contracts ZoneRefusal).
        "arming.unknown_zone": "No such zone: {zone}",
        "arming.not_latched": "Zone “{zone}” is not latched: nothing to reset",
        "arming.cannot_disarm": "Zone “{zone}” is a 24-hour {zone_kind} zone: it cannot be disarmed",
        "arming.no_arming": "Zone “{zone}” ({zone_kind}) has no arming",
        "arming.unknown_action": "Unknown action: {action}",
        "arming.unknown_device": "Device “{device}” is in no zone",
      },
      zoneKinds: { panic: "panic", intrusion: "intrusion", fire: "fire", environment: "environment" },
      listSep: ", ",
      videoPlatform: "Police video platform (GB/T 28181)", vpRegistered: "registered", vpDown: "not registered",
    },
  };

  const $ = (id) => document.getElementById(id);
  let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
  const langListeners = [];
  let page = null;
  let linkState = "offline";
  let whoAmI = null;

  function fill(s, vars) {
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(v === null || v === undefined ? "—" : v);
    return s;
  }
  function t(key, vars) {
    const s = TEXT[lang][key];
    return fill(s === undefined ? key : s, vars);
  }
  // A word from one of the dictionaries (kinds, metrics...), or the raw value when there is none.
  function word(dict, value) {
    if (value === null || value === undefined || value === "") return "—";
    const d = TEXT[lang][dict];
    return (d && d[value]) || String(value);
  }
  const kindName = (k) => word("kinds", k);
  // A gateway's GB/T 28181 registration (the heartbeat's gb28181 section) as one line of text.
  const videoPlatformText = (vp) => (vp ? `${vp.platform} ${t(vp.registered ? "vpRegistered" : "vpDown")}`
    + (vp.registered ? "" : `: ${vp.reason}`) : "—");

  // A server finding rendered in the page's language from its key and parameters.
  const PARAM_DICTS = { class_type: "classTypes", licence: "licences", document: "documents", status: "filing",
    service: "services", zone_kind: "zoneKinds" };
  function findingText(f) {
    const template = TEXT[lang].findingText[f.key];
    if (template === undefined) return f.message;
    const vars = {};
    for (const [k, v] of Object.entries(f.params || {})) {
      if (Array.isArray(v)) vars[k] = v.join(TEXT[lang].listSep);
      else if (PARAM_DICTS[k]) vars[k] = word(PARAM_DICTS[k], v);
      else vars[k] = typeof v === "number" ? fmtNumber(v) : String(v);
    }
    return fill(template, vars);
  }

  // --- times: in the facility's zone, with the zone named -----------------------------------
  const formatters = new Map();
  function formatter(tz, ms) {
    const key = `${lang}|${tz}|${ms}`;
    if (!formatters.has(key)) {
      formatters.set(key, new Intl.DateTimeFormat("en-CA", {
        timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", hourCycle: "h23", ...(ms ? { fractionalSecondDigits: 3 } : {}) }));
    }
    return formatters.get(key);
  }
  // `YYYY-MM-DD HH:MM:SS[.mmm]` in `tz` (default: the platform's zone); `ms` to the millisecond, as
  // dispatchers compare delivery times.
  function formatTime(iso, ms, tz) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const parts = Object.fromEntries(formatter(tz || DEFAULT_ZONE, !!ms).formatToParts(d).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}` +
      (ms ? `.${parts.fractionalSecond}` : "");
  }
  // The zone's name as people say it ("中国标准时间", "China Standard Time").
  function zoneName(tz) {
    const zone = tz || DEFAULT_ZONE;
    try {
      const part = new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en", { timeZone: zone, timeZoneName: "long" })
        .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
      return part ? part.value : zone;
    } catch (e) { return zone; }
  }
  const withZone = (label, tz) => `${label}（${zoneName(tz)}）`.replace(/（(.*)）$/, lang === "zh" ? "（$1）" : " ($1)");
  function todayIn(tz) { return formatTime(new Date().toISOString(), false, tz).slice(0, 10); }

  function fmtNumber(v, digits) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v !== "number") return String(v);
    if (digits === undefined) return Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100);
    return v.toFixed(digits);
  }
  const fmtPercent = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);

  // --- units and limits as people read them -------------------------------------------------
  const UNITS = { temperature: "°C", humidity: "%", co2: "ppm" };
  function withUnit(value, metric, digits) {
    if (value === null || value === undefined) return "—";
    const unit = UNITS[metric] || "";
    return `${fmtNumber(value, digits)}${unit === "%" || unit === "°C" ? "" : " "}${unit}`.trim();
  }
  function limitText(low, high, metric) {
    const has = (v) => v !== null && v !== undefined;
    if (has(low) && has(high)) return `${fmtNumber(low)}–${withUnit(high, metric)}`;
    if (has(high)) return `≤ ${withUnit(high, metric)}`;
    if (has(low)) return `≥ ${withUnit(low, metric)}`;
    return "—";
  }

  // --- places: names first, ids second ------------------------------------------------------
  const places = new Map();
  let placesVersion = 0;  // bumped when a name may have changed, so cached renderings redraw
  function rememberPlaces(map) {
    for (const [fid, p] of Object.entries(map || {})) {
      const before = places.get(fid);
      if (before && JSON.stringify(before) === JSON.stringify(p)) continue;
      places.set(fid, p);
      placesVersion += 1;
    }
  }
  async function loadPlaces(ids) {
    const missing = [...new Set(ids)].filter((id) => id && !places.has(id));
    if (!missing.length) return;
    rememberPlaces(await api("GET", "/api/dashboard/places" + qs({ facility: missing })));
  }
  const placeOf = (fid) => places.get(fid) || null;
  const facilityName = (fid) => (placeOf(fid) ? placeOf(fid).name : fid);
  function zoneLabel(fid, zone) {
    if (!zone) return "—";
    const p = placeOf(fid);
    return (p && p.zones[zone]) || zone;
  }
  function districtText(p) { return p ? `${p.city} ${p.district}` : "—"; }
  // "province/city/district" (statistics) or a place, in one format.
  function districtPathText(path) { const parts = String(path).split("/"); return parts.slice(-2).join(" "); }
  // A name with its id after it, smaller: the id is there for whoever needs to quote it.
  function named(name, id) {
    if (!id || name === id) return el("span", { text: name || "—" });
    return el("span", {}, name, " ", el("small", { class: "id", text: id }));
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function button(label, onclick, attrs) {
    return el("button", Object.assign({ type: "button", text: label, onclick }, attrs || {}));
  }

  // A button that cannot be used yet, described by the element (id `whyId`) that says why.
  function disabledFor(btn, whyId) {
    if (!whyId) return btn;
    btn.disabled = true;
    btn.setAttribute("aria-describedby", whyId);
    return btn;
  }
  let whyCount = 0;
  const whyId = () => `why-${++whyCount}`;

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // A Blob (a file from an <input type=file>) goes as the raw body with its own type; anything else as JSON.
  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    const raw = body instanceof Blob;
    if (body !== undefined) headers["Content-Type"] = raw ? (body.type || "application/octet-stream") : "application/json";
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : (raw ? body : JSON.stringify(body)) });
    if (resp.status === 401) { showLogin(t("badToken")); throw new ApiError(401, "unauthorized"); }
    // A token of another role: the login form again, with a message a person understands.
    if (resp.status === 403 && method === "GET") { showLogin(t("forbidden")); throw new ApiError(403, "forbidden"); }
    if (!resp.ok) {
      let detail = await resp.text();
      try { const j = JSON.parse(detail); detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (e) { /* not JSON */ }
      throw new ApiError(resp.status, `${resp.status} ${detail}`);
    }
    const type = resp.headers.get("content-type") || "";
    return type.includes("application/json") ? resp.json() : resp.blob();
  }
  // Whether an error is one the page shows itself (401 and 403 already brought the login form).
  const shown = (err) => err.status === 401 || err.status === 403;

  function qs(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
      for (const one of Array.isArray(v) ? v : [v]) {
        if (one !== null && one !== undefined && one !== "") parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
      }
    }
    return parts.length ? `?${parts.join("&")}` : "";
  }

  function setLinkState(state) {
    linkState = state;
    const node = $("link-state");
    if (!node) return;
    node.dataset.state = state;
    node.textContent = t(state);
  }

  // New alarms interrupt (assertive); the outcome of the user's own action waits its turn (polite).
  function announce(message, polite) {
    const a = $(polite ? "status-announcer" : "announcer");
    if (!a) return;
    a.textContent = "";
    // A fresh text node each time, so the same words twice are read twice.
    setTimeout(() => { a.textContent = message; }, 30);
  }

  function errorText(err) { return `${t("loadFailed")}: ${err.message}`; }

  function showError(message) { const e = $("load-error"); if (e) e.textContent = message || ""; }
  function reportError(err, prefix) { if (!shown(err)) showError(prefix ? `${prefix}: ${err.message}` : errorText(err)); }

  function renderWho() {
    const node = $("who");
    if (!node) return;
    node.hidden = !whoAmI;
    node.textContent = whoAmI ? `${t("signedIn")}: ${whoAmI.user}` : "";
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    if (page) document.title = t(page.title);
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
    const toggle = $("lang-toggle");
    toggle.textContent = t("langSwitch");
    toggle.lang = t("langSwitchLang");
    setLinkState(linkState);
    renderWho();
    for (const fn of langListeners) fn();
  }

  function showLogin(message) {
    if (page && page.stop) page.stop();
    setLinkState("offline");
    sessionStorage.removeItem(TOKEN_KEY);
    whoAmI = null;
    renderWho();
    for (const d of document.querySelectorAll("dialog[open]")) d.close();
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token-input").value = "";
    $("token-input").focus();
  }

  function begin() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    api("GET", "/api/dashboard/me").then((me) => { whoAmI = me; renderWho(); }).catch(() => {});
    page.start();
  }

  function wireLanguage() {
    $("lang-toggle").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      localStorage.setItem(LANG_KEY, lang);
      applyLanguage();
    });
  }

  // Wires the login form, the language switch and sign-out; `spec` is {title, start, stop}.
  function init(spec) {
    page = spec;
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      begin();
    });
    $("logout").addEventListener("click", () => showLogin(""));
    wireLanguage();
    applyLanguage();
    if (token()) begin(); else showLogin("");
  }

  // A page's own words, merged into the shared ones: {zh: {...}, en: {...}}.
  function addText(words) {
    for (const l of Object.keys(TEXT)) Object.assign(TEXT[l], words[l] || {});
  }

  // A page anyone may read (no token): the language switch only, then `spec.start()`.
  function initPublic(spec) {
    page = spec;
    $("link-state").hidden = true;
    wireLanguage();
    applyLanguage();
    $("app").hidden = false;
    spec.start();
  }

  // EventSource cannot send headers: the stream is opened with a short-lived, single-use ticket
  // (POST /api/stream-tickets), never the token, which would land in URLs and logs. A spent
  // ticket cannot reconnect, so every reconnection asks for a new one. Returns { close() }.
  function stream(path, handlers) {
    let src = null;
    let timer = null;
    let stopped = false;
    function again(delayMs) {
      if (!stopped) timer = setTimeout(open, delayMs);
    }
    async function open() {
      if (stopped) return;
      let ticket;
      try {
        ticket = (await api("POST", "/api/stream-tickets")).ticket;
      } catch (err) {
        setLinkState("offline");
        if (handlers.closed) handlers.closed();
        if (err.status !== 401) again(5000);  // a rejected token shows the login instead
        return;
      }
      if (stopped) return;
      src = new EventSource(`${path}?ticket=${encodeURIComponent(ticket)}`);
      src.addEventListener("open", () => { setLinkState("live"); if (handlers.open) handlers.open(); });
      for (const [name, fn] of Object.entries(handlers)) {
        if (name !== "open" && name !== "closed") src.addEventListener(name, (ev) => fn(JSON.parse(ev.data || "{}")));
      }
      src.addEventListener("error", () => {
        const closed = src.readyState === EventSource.CLOSED;
        src.close();
        setLinkState(closed ? "offline" : "reconnecting");
        if (closed && handlers.closed) handlers.closed();
        again(2000);
      });
    }
    open();
    return { close() { stopped = true; clearTimeout(timer); if (src) src.close(); } };
  }

  // Pages without a stream refresh on a timer; `?refresh=N` (seconds) overrides the default.
  function refreshSeconds(fallback) {
    const v = Number(new URLSearchParams(location.search).get("refresh"));
    return v > 0 ? v : fallback;
  }

  function poller(fn, seconds) {
    let timer = null;
    let stopped = false;
    async function tick() {
      try { await fn(); if (linkState === "offline") setLinkState("polling"); } catch (err) { reportError(err); }
      if (!stopped) timer = setTimeout(tick, seconds * 1000);
    }
    tick();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  // --- dialogs -------------------------------------------------------------------------------
  // A modal <dialog>: Escape closes it (the browser does), focus goes in, and comes back to the
  // control that opened it when it closes.
  function openDialog(dialog, opener, onClose) {
    if (!dialog.dataset.wired) {
      dialog.dataset.wired = "1";
      dialog.addEventListener("close", () => {
        const back = dialog._opener;
        dialog._opener = null;
        if (dialog._onClose) dialog._onClose();
        if (back && back.isConnected) back.focus();
      });
    }
    dialog._opener = opener || document.activeElement;
    dialog._onClose = onClose || null;
    if (!dialog.open) dialog.showModal();
  }

  // --- CSV ---------------------------------------------------------------------------------
  function csvField(v) {
    let s = v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v));
    // A text cell starting with = + - @ (or a tab or CR) would run as a formula in a spreadsheet.
    if (typeof v !== "number" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  function downloadCsv(filename, columns, rows) {
    const lines = [columns.map((c) => csvField(t(c.label))).join(",")];
    for (const r of rows) lines.push(columns.map((c) => csvField(c.csv ? c.csv(r) : r[c.key])).join(","));
    // A BOM so that spreadsheet programs read the Chinese text as UTF-8.
    const blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    const a = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // A box that may scroll sideways on a narrow screen: keyboard users can focus it and scroll
  // with the arrow keys, and a screen reader names it.
  // `label`: a text key, or a function giving the name.
  function scrollBox(label) {
    const box = el("div", { class: "table-wrap", tabindex: "0", role: "region" });
    const name = () => box.setAttribute("aria-label", t("scrollRegion", { name: typeof label === "function" ? label() : t(label) }));
    name();
    langListeners.push(name);
    return box;
  }
  // A table without a name of its own is named after the heading of the section it sits in.
  function headingOf(container) {
    for (let n = container.previousElementSibling; n; n = n.previousElementSibling) {
      if (/^H[23]$/.test(n.tagName) && n.textContent) return n.textContent;
    }
    const section = container.closest("section, article, dialog");
    const heading = section && section.querySelector("h2, h3");
    return heading ? heading.textContent : t("noData");
  }

  // --- tables ------------------------------------------------------------------------------
  // A table over a server-paged list. `load(cursor)` resolves to {items, next_cursor}, or null
  // for a table fed by setItems. Columns: {key, label, render?(row) -> Node|string, num?, csv?(row)}.
  // Without paging, `load` ignores the cursor and returns everything in one page. `empty` names the
  // text key saying what is missing and who can fill it; `label` the key naming the table.
  class Table {
    constructor(container, opts) {
      this.opts = opts;
      this.items = [];
      this.cursors = [null];
      this.index = 0;
      this.next = null;
      this.name = () => (opts.label ? t(opts.label) : headingOf(container));
      this.wrap = scrollBox(this.name);
      this.table = el("table", { id: opts.id || null });
      // A table named by its own label gets a caption; one without is named by the heading above it.
      this.caption = opts.label ? el("caption", { class: "visually-hidden" }) : null;
      if (this.caption) this.table.append(this.caption);
      this.thead = el("thead");
      this.tbody = el("tbody");
      this.table.append(this.thead, this.tbody);
      this.empty = el("p", { class: "empty" });
      this.pager = el("div", { class: "pager" });
      this.prevBtn = button("", () => this.go(this.index - 1));
      this.nextBtn = button("", () => this.go(this.index + 1));
      this.pageLabel = el("span", { class: "page-label" });
      this.csvBtn = button("", () => downloadCsv(opts.csvName || "export.csv", opts.columns, this.items),
        { class: "secondary csv" });
      this.pager.append(this.prevBtn, this.pageLabel, this.nextBtn, this.csvBtn);
      this.wrap.append(this.table);
      container.append(this.wrap, this.empty, this.pager);
      this.render();
      langListeners.push(() => this.render());
    }

    async reload() { this.cursors = [null]; return this.go(0); }

    async refresh() { return this.go(this.index); }

    async go(index) {
      if (index < 0 || index >= this.cursors.length) return;
      const page = await this.opts.load(this.cursors[index]);
      this.index = index;
      this.items = page ? page.items : [];
      this.next = page ? page.next_cursor || null : null;
      if (this.next && this.cursors.length === index + 1) this.cursors.push(this.next);
      this.loaded = true;
      this.render();
    }

    setItems(items) { this.items = items; this.next = null; this.loaded = true; this.render(); }

    render() {
      const cols = this.opts.columns;
      if (this.caption) this.caption.textContent = this.name();
      this.thead.replaceChildren(el("tr", {}, ...cols.map((c) => el("th", { scope: "col", text: c.head ? c.head() : t(c.label) }))));
      this.tbody.replaceChildren(...this.items.map((r) => {
        const tr = el("tr", this.opts.rowAttrs ? this.opts.rowAttrs(r) : {});
        for (const c of cols) {
          const v = c.render ? c.render(r) : r[c.key];
          const td = el("td", { class: c.num ? "num" : null });
          if (v instanceof Node) td.append(v); else td.textContent = v === null || v === undefined ? "—" : String(v);
          tr.append(td);
        }
        return tr;
      }));
      this.empty.textContent = t(this.opts.empty || "noData");
      this.empty.hidden = !this.loaded || this.items.length > 0;
      this.wrap.hidden = !this.loaded || this.items.length === 0;
      this.prevBtn.textContent = t("prev");
      this.nextBtn.textContent = t("next");
      this.csvBtn.textContent = t("csv");
      this.pageLabel.textContent = t("page", { n: this.index + 1 });
      this.prevBtn.disabled = this.index === 0;
      this.nextBtn.disabled = !this.next;
      const paged = this.index > 0 || this.next;
      this.prevBtn.hidden = this.nextBtn.hidden = this.pageLabel.hidden = !paged;
      this.csvBtn.hidden = this.items.length === 0;
      if (this.opts.afterRender) this.opts.afterRender(this.items);
    }
  }

  // --- SVG charts --------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  }
  // Width of a label in chart units: a CJK character is about one font size wide, Latin half that.
  function textWidth(s, size) {
    let w = 0;
    for (const ch of String(s)) w += /[\u2e80-\uffff]/.test(ch) ? size : size * 0.6;
    return w;
  }

  // Horizontal bars of {label, value}, with an optional target line. Labels get the room they
  // need, so none is clipped; a bar without a value says so instead of drawing nothing.
  function barChart(container, data, opts) {
    if (!data.length) { container.replaceChildren(); return; }
    const o = Object.assign({ width: 640, bar: 22, gap: 8, font: 12 }, opts || {});
    const labelW = Math.ceil(Math.max(...data.map((d) => textWidth(d.label, o.font)))) + 12;
    const max = Math.max(o.target || 0, ...data.map((d) => d.value || 0), 1e-9);
    const plotW = o.width - labelW - 70;
    const height = data.length * (o.bar + o.gap) + 30;
    const root = svg("svg", { viewBox: `0 0 ${o.width} ${height}`, width: "100%", role: "img", "aria-label": o.title || "" });
    data.forEach((d, i) => {
      const y = i * (o.bar + o.gap) + 4;
      const has = d.value !== null && d.value !== undefined;
      const w = has ? Math.max(0, d.value / max * plotW) : 0;
      const short = o.target !== undefined && has && d.value < o.target;
      root.append(svg("text", { x: labelW - 6, y: y + o.bar * 0.7, "text-anchor": "end", class: "chart-label" }, d.label));
      if (has) root.append(svg("rect", { x: labelW, y, width: w, height: o.bar, class: short ? "bar bar-short" : "bar" }));
      root.append(svg("text", { x: labelW + w + 4, y: y + o.bar * 0.7, class: "chart-value" },
        has ? fmtNumber(d.value, 2) : (o.missing || "—")));
    });
    if (o.target !== undefined) {
      const x = labelW + o.target / max * plotW;
      root.append(svg("line", { x1: x, x2: x, y1: 0, y2: height - 24, class: "target-line" }));
      root.append(svg("text", { x, y: height - 8, "text-anchor": "middle", class: "chart-label" }, `${t("target")} ${o.target}`));
    }
    container.replaceChildren(root);
  }

  // A line over [{ts, value}] with the allowed band [low, high] shaded; axis labels in the unit.
  function lineChart(container, points, opts) {
    const o = Object.assign({ width: 640, height: 220, pad: 14, bottom: 26 }, opts || {});
    if (!points.length) { container.replaceChildren(el("p", { class: "empty", text: t("emptySeries") })); return; }
    const xs = points.map((p) => new Date(p.ts).getTime());
    const vs = points.map((p) => p.value);
    const bounds = vs.concat([o.low, o.high].filter((v) => v !== null && v !== undefined));
    let lo = Math.min(...bounds), hi = Math.max(...bounds);
    if (hi === lo) { hi += 1; lo -= 1; }
    const yLabels = [withUnit(hi, o.metric, 1), withUnit(lo, o.metric, 1)];
    const left = Math.ceil(Math.max(...yLabels.map((s) => textWidth(s, 12)))) + 10;
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    const X = (x) => left + (x - x0) / (x1 - x0) * (o.width - left - o.pad);
    const Y = (v) => o.pad + (hi - v) / (hi - lo) * (o.height - o.pad - o.bottom);
    const root = svg("svg", { viewBox: `0 0 ${o.width} ${o.height}`, width: "100%", role: "img", "aria-label": o.title || "" });
    if (o.low !== null && o.low !== undefined && o.high !== null && o.high !== undefined) {
      root.append(svg("rect", { x: left, y: Y(o.high), width: o.width - left - o.pad, height: Y(o.low) - Y(o.high), class: "band" }));
    }
    root.append(svg("polyline", { points: points.map((p, i) => `${X(xs[i])},${Y(p.value)}`).join(" "), class: "line" }));
    root.append(svg("text", { x: left - 6, y: Y(hi) + 4, "text-anchor": "end", class: "chart-label" }, yLabels[0]));
    root.append(svg("text", { x: left - 6, y: Y(lo), "text-anchor": "end", class: "chart-label" }, yLabels[1]));
    root.append(svg("text", { x: left, y: o.height - 6, class: "chart-label" }, formatTime(new Date(x0).toISOString(), false, o.tz)));
    root.append(svg("text", { x: o.width - o.pad, y: o.height - 6, "text-anchor": "end", class: "chart-label" },
      formatTime(new Date(x1).toISOString(), false, o.tz)));
    container.replaceChildren(root);
  }

  return {
    $, t, word, kindName, findingText, videoPlatformText, el, button, disabledFor, whyId, api, qs, init, initPublic,
    addText, stream, poller, refreshSeconds, setLinkState, announce, showError, reportError, errorText, shown, formatTime,
    zoneName, withZone, todayIn, fmtNumber, fmtPercent, withUnit, limitText, downloadCsv, scrollBox, Table, barChart,
    lineChart, openDialog, rememberPlaces, loadPlaces, placeOf, facilityName, zoneLabel, districtText, districtPathText,
    named, onLanguage: (fn) => langListeners.push(fn), lang: () => lang, placesVersion: () => placesVersion,
    me: () => whoAmI, DEFAULT_ZONE,
  };
})();

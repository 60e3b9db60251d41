// What every dashboard page shares: words in Chinese and English, the token kept for the browser
// session, API calls, the live event stream, paged tables with CSV export and small SVG charts.
// Vanilla JS with no build step, so the pages work on an intranet without any CDN.
"use strict";

window.CG = (function () {
  const TOKEN_KEY = "careguard.token";
  const LANG_KEY = "careguard.lang";

  const TEXT = {
    zh: {
      logout: "退出", loginTitle: "请输入访问令牌", tokenLabel: "访问令牌", loginButton: "进入",
      langSwitch: "English", langSwitchLang: "en",
      live: "实时", reconnecting: "重连中", offline: "未连接", polling: "定时刷新",
      badToken: "令牌无效或已过期，请重新输入", forbidden: "此令牌无权查看本页", loadFailed: "加载失败",
      noData: "暂无数据", prev: "上一页", next: "下一页", csv: "导出 CSV",
      page: "第 {n} 页", yes: "是", no: "否", close: "关闭", updated: "更新于",
      policeTitle: "托育机构报警 · 公安接警台", healthTitle: "托育机构卫生保健监测", supervisionTitle: "托育服务监管",
      facilityTitle: "本机构安防与设备状态",
      // police
      boardTitle: "实时报警", unacked: "待确认", empty: "暂无报警",
      colFacility: "机构", colZone: "区域", colKind: "类型", colRaised: "报警时间（现场）",
      colDelivered: "送达公安时间", colDeliveryMs: "送达耗时 (ms)", colState: "状态", colAck: "确认",
      colWorkflow: "处置", colDetail: "详情",
      ack: "确认", acking: "确认中…", ackedBy: "已确认", active: "报警中", cleared: "已消除",
      ackFailed: "操作失败", newAlarm: "新报警", dispatch: "派警", dispatchedBy: "已派警",
      resolve: "结案", outcome: "结论", outcome_real: "真实警情", outcome_false: "误报", outcome_test: "演练",
      resolvedAs: "已结案", drill: "演练", drillNoDispatch: "演练报警，不派警", details: "详情",
      filterCity: "城市", filterDistrict: "区县", applyFilter: "筛选", clearFilter: "清除", loadMore: "加载更多",
      cardTitle: "机构信息", address: "地址", coordinates: "坐标", contact: "联系人", enrolled: "在托幼儿",
      guards: "保安", snapshots: "区域摄像机最新画面", sceneTitle: "报警录像与实时画面", noSnapshot: "无画面", pathsTitle: "公安联网链路状态",
      heartbeat: "最近心跳", paths: "链路", linkDown: "链路中断报警", pathUp: "正常", pathDown: "中断",
      soundHint: "点击或按键后启用报警提示音",
      // health
      roomsTitle: "室内环境（GB/T 18883）", device: "设备", metric: "指标", latest: "最新值", limits: "限值",
      inRange: "达标", breachSince: "超标起始", chart: "曲线", chartTitle: "曲线", h24: "24 小时", d7: "7 天",
      checksTitle: "今日晨午检", className: "班级", classType: "班型", morningDone: "晨检", noonDone: "午检",
      missingAfter10: "10点后未晨检", clustersTitle: "症状聚集", symptom: "症状", count: "人数", firstAt: "首次",
      lastAt: "最近", certsTitle: "即将到期的健康证", staffId: "员工", role: "岗位", certKind: "证件",
      expiresOn: "到期日", status: "状态",
      // supervision
      deadLettersTitle: "拒收消息（按机构）", deadLetters: "拒收条数",
      districtTitle: "各区县合规情况", district: "区县", city: "城市", facilities: "机构数", compliant: "合规",
      warning: "预警", non_compliant: "不合规", facilityFindings: "机构检查结果", score: "得分",
      findings: "问题", rule: "规则", level: "级别", message: "说明", source: "依据", placesTitle: "每千人口托位数",
      target: "目标", population: "人口", places: "托位", placesPer1000: "每千人托位", puhuiShare: "普惠占比",
      occupancy: "入托率", camerasOnline: "摄像机在线率", retentionOk: "录像保存达标率", responseTitle: "接警响应时间（30 天）",
      alarms: "报警数", acknowledged: "已确认", dispatched: "已派警", ackMedian: "确认中位 (s)", ackP90: "确认 P90 (s)",
      dispatchMedian: "派警中位 (s)", recentAlarms: "最新报警", back: "返回", breach: "违规",
      // facility
      name: "名称", overview: "总览", gateway: "网关", online: "在线", offlineState: "离线", lastSeen: "最近上报",
      activeAlarms: "未消除报警", zonesTitle: "防区", latched: "锁定", armed: "布防", disarmed: "撤防",
      arm: "布防", disarm: "撤防", mode: "模式", devicesTitle: "设备", camerasTitle: "摄像机与录像",
      camera: "摄像机", fps: "帧率", frameAge: "画面延迟 (s)", quality: "连接质量", fault: "故障",
      achievedDays: "已保存天数", requiredDays: "要求天数", retention: "录像保存", eventsTitle: "布撤防记录",
      time: "时间", by: "操作人", refused: "被拒绝", drillTitle: "报警演练", drillZone: "演练防区",
      drillButton: "发起演练", drillSent: "演练指令已发送", drillHint: "演练报警以“测试”送达公安，不会派警。",
      facilityAlarms: "本机构报警", commandSent: "指令已发送", commandFailed: "指令失败", kind: "类型",
      kinds: {
        panic: "一键报警", intrusion: "入侵", fire: "火警", tamper: "防拆", camera_fault: "摄像机故障",
        retention_breach: "录像保存不足", sensor_range: "传感器超限", device_offline: "设备离线",
        gateway_offline: "网关离线", police_link_down: "公安链路中断", test: "测试",
        video_platform_down: "视频联网中断",
      },
      videoPlatform: "视频联网（GB/T 28181）", vpRegistered: "已注册", vpDown: "未注册",
    },
    en: {
      logout: "Sign out", loginTitle: "Enter your access token", tokenLabel: "Access token", loginButton: "Open",
      langSwitch: "中文", langSwitchLang: "zh-CN",
      live: "Live", reconnecting: "Reconnecting", offline: "Offline", polling: "Auto refresh",
      badToken: "Token invalid or expired, enter it again", forbidden: "This token may not view this page",
      loadFailed: "Loading failed", noData: "No data",
      prev: "Previous", next: "Next", csv: "Export CSV", page: "Page {n}", yes: "Yes", no: "No", close: "Close",
      updated: "Updated",
      policeTitle: "Nursery alarms · Police desk", healthTitle: "Nursery health monitoring",
      supervisionTitle: "Childcare supervision", facilityTitle: "Our security and devices",
      boardTitle: "Live alarms", unacked: "Unacknowledged", empty: "No alarms",
      colFacility: "Facility", colZone: "Zone", colKind: "Kind", colRaised: "Raised (on site)",
      colDelivered: "Delivered to police", colDeliveryMs: "Delivery (ms)", colState: "State", colAck: "Acknowledge",
      colWorkflow: "Response", colDetail: "Details",
      ack: "Acknowledge", acking: "Acknowledging…", ackedBy: "Acknowledged", active: "Active", cleared: "Cleared",
      ackFailed: "Action failed", newAlarm: "New alarm", dispatch: "Dispatch", dispatchedBy: "Dispatched",
      resolve: "Resolve", outcome: "Outcome", outcome_real: "Real", outcome_false: "False alarm", outcome_test: "Drill",
      resolvedAs: "Resolved", drill: "Drill", drillNoDispatch: "Drill: never dispatched", details: "Details",
      filterCity: "City", filterDistrict: "District", applyFilter: "Filter", clearFilter: "Clear",
      loadMore: "Load more", cardTitle: "Facility", address: "Address", coordinates: "Coordinates",
      contact: "Contact", enrolled: "Children enrolled", guards: "Guards", snapshots: "Latest pictures of the zone",
      sceneTitle: "Alarm clips and live view", noSnapshot: "No picture", pathsTitle: "Police link state", heartbeat: "Last heartbeat", paths: "Paths",
      linkDown: "Link-down alarms", pathUp: "up", pathDown: "down", soundHint: "Click or press a key to enable the alarm sound",
      roomsTitle: "Room climate (GB/T 18883)", device: "Device", metric: "Metric", latest: "Latest", limits: "Limits",
      inRange: "In range", breachSince: "Out of range since", chart: "Chart", chartTitle: "Chart", h24: "24 hours",
      d7: "7 days", checksTitle: "Today's morning and noon checks", className: "Class", classType: "Class type",
      morningDone: "Morning", noonDone: "Noon", missingAfter10: "Morning missing after 10:00",
      clustersTitle: "Symptom clusters", symptom: "Symptom", count: "Children", firstAt: "First", lastAt: "Last",
      certsTitle: "Health certificates expiring", staffId: "Staff", role: "Role", certKind: "Certificate",
      expiresOn: "Expires", status: "Status",
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
      name: "Name", overview: "Overview", gateway: "Gateway", online: "Online", offlineState: "Offline", lastSeen: "Last seen",
      activeAlarms: "Active alarms", zonesTitle: "Zones", latched: "Latched", armed: "Armed", disarmed: "Disarmed",
      arm: "Arm", disarm: "Disarm", mode: "Mode", devicesTitle: "Devices", camerasTitle: "Cameras and recordings",
      camera: "Camera", fps: "FPS", frameAge: "Frame age (s)", quality: "Link quality", fault: "Fault",
      achievedDays: "Days kept", requiredDays: "Days required", retention: "Retention", eventsTitle: "Arming events",
      time: "Time", by: "By", refused: "Refused", drillTitle: "Alarm drill", drillZone: "Drill zone",
      drillButton: "Start drill", drillSent: "Drill command sent",
      drillHint: "A drill reaches the police as a test and is never dispatched.", facilityAlarms: "Our alarms",
      commandSent: "Command sent", commandFailed: "Command failed", kind: "Kind",
      kinds: {
        panic: "Panic button", intrusion: "Intrusion", fire: "Fire", tamper: "Tamper", camera_fault: "Camera fault",
        retention_breach: "Recording retention short", sensor_range: "Sensor out of range",
        device_offline: "Device offline", gateway_offline: "Gateway offline", police_link_down: "Police link down",
        test: "Test", video_platform_down: "Police video platform lost",
      },
      videoPlatform: "Police video platform (GB/T 28181)", vpRegistered: "registered", vpDown: "not registered",
    },
  };

  const $ = (id) => document.getElementById(id);
  let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
  const langListeners = [];
  let page = null;
  let linkState = "offline";

  function t(key, vars) {
    let s = TEXT[lang][key];
    if (s === undefined) s = key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
    return s;
  }
  const kindName = (k) => TEXT[lang].kinds[k] || k;
  // A gateway's GB/T 28181 registration (the heartbeat's gb28181 section) as one line of text.
  const videoPlatformText = (vp) => (vp ? `${vp.platform} ${t(vp.registered ? "vpRegistered" : "vpDown")}`
    + (vp.registered ? "" : `: ${vp.reason}`) : "—");

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  // Local wall-clock time; with `ms` to the millisecond, as dispatchers compare delivery times.
  function formatTime(iso, ms) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` + (ms ? `.${pad(d.getMilliseconds(), 3)}` : "");
  }

  function fmtNumber(v, digits) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v !== "number") return String(v);
    return digits === undefined ? String(v) : v.toFixed(digits);
  }
  const fmtPercent = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);

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
    if (!resp.ok) {
      let detail = await resp.text();
      try { const j = JSON.parse(detail); detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (e) { /* not JSON */ }
      throw new ApiError(resp.status, `${resp.status} ${detail}`);
    }
    const type = resp.headers.get("content-type") || "";
    return type.includes("application/json") ? resp.json() : resp.blob();
  }

  function qs(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== "") parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
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

  function announce(message) { const a = $("announcer"); if (a) a.textContent = message; }

  function errorText(err) { return `${t("loadFailed")}: ${err.message}`; }

  function showError(message) { const e = $("load-error"); if (e) e.textContent = message || ""; }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    if (page) document.title = t(page.title);
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    const toggle = $("lang-toggle");
    toggle.textContent = t("langSwitch");
    toggle.lang = t("langSwitchLang");
    setLinkState(linkState);
    for (const fn of langListeners) fn();
  }

  function showLogin(message) {
    if (page && page.stop) page.stop();
    setLinkState("offline");
    sessionStorage.removeItem(TOKEN_KEY);
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
      try { await fn(); if (linkState === "offline") setLinkState("polling"); } catch (err) {
        if (err.status !== 401) showError(errorText(err));
      }
      if (!stopped) timer = setTimeout(tick, seconds * 1000);
    }
    tick();
    return { stop() { stopped = true; clearTimeout(timer); } };
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

  // --- tables ------------------------------------------------------------------------------
  // A table over a server-paged list. `load(cursor)` resolves to {items, next_cursor}, or null
  // for a table fed by setItems. Columns: {key, label, render?(row) -> Node|string, num?, csv?(row)}.
  // Without paging, `load` ignores the cursor and returns everything in one page.
  class Table {
    constructor(container, opts) {
      this.opts = opts;
      this.items = [];
      this.cursors = [null];
      this.index = 0;
      this.next = null;
      this.wrap = el("div", { class: "table-wrap" });
      this.table = el("table", { id: opts.id || null });
      this.caption = opts.caption ? el("caption", { class: "visually-hidden" }) : null;
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
      this.wrap.append(this.table, this.empty);
      container.append(this.wrap, this.pager);
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
      this.render();
    }

    setItems(items) { this.items = items; this.next = null; this.render(); }

    render() {
      const cols = this.opts.columns;
      if (this.caption) this.caption.textContent = t(this.opts.caption);
      this.thead.replaceChildren(el("tr", {}, ...cols.map((c) => el("th", { scope: "col", text: t(c.label) }))));
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
      this.empty.textContent = t("noData");
      this.empty.hidden = this.items.length > 0;
      this.prevBtn.textContent = t("prev");
      this.nextBtn.textContent = t("next");
      this.csvBtn.textContent = t("csv");
      this.pageLabel.textContent = t("page", { n: this.index + 1 });
      this.prevBtn.disabled = this.index === 0;
      this.nextBtn.disabled = !this.next;
      const paged = this.index > 0 || this.next;
      this.prevBtn.hidden = this.nextBtn.hidden = this.pageLabel.hidden = !paged;
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

  // Horizontal bars of {label, value}, with an optional target line.
  function barChart(container, data, opts) {
    if (!data.length) { container.replaceChildren(); return; }
    const o = Object.assign({ width: 640, bar: 22, gap: 8, labelW: 120 }, opts || {});
    const max = Math.max(o.target || 0, ...data.map((d) => d.value || 0), 1e-9);
    const plotW = o.width - o.labelW - 60;
    const height = data.length * (o.bar + o.gap) + 30;
    const root = svg("svg", { viewBox: `0 0 ${o.width} ${height}`, width: "100%", role: "img", "aria-label": o.title || "" });
    data.forEach((d, i) => {
      const y = i * (o.bar + o.gap) + 4;
      const w = Math.max(0, (d.value || 0) / max * plotW);
      const short = o.target !== undefined && d.value < o.target;
      root.append(svg("text", { x: o.labelW - 6, y: y + o.bar * 0.7, "text-anchor": "end", class: "chart-label" }, d.label));
      root.append(svg("rect", { x: o.labelW, y, width: w, height: o.bar, class: short ? "bar bar-short" : "bar" }));
      root.append(svg("text", { x: o.labelW + w + 4, y: y + o.bar * 0.7, class: "chart-value" }, fmtNumber(d.value, 2)));
    });
    if (o.target !== undefined) {
      const x = o.labelW + o.target / max * plotW;
      root.append(svg("line", { x1: x, x2: x, y1: 0, y2: height - 24, class: "target-line" }));
      root.append(svg("text", { x, y: height - 8, "text-anchor": "middle", class: "chart-label" }, `${t("target")} ${o.target}`));
    }
    container.replaceChildren(root);
  }

  // A line over [{ts, value}] with the allowed band [low, high] shaded.
  function lineChart(container, points, opts) {
    const o = Object.assign({ width: 640, height: 200, pad: 36 }, opts || {});
    if (!points.length) { container.replaceChildren(el("p", { class: "empty", text: t("noData") })); return; }
    const xs = points.map((p) => new Date(p.ts).getTime());
    const vs = points.map((p) => p.value);
    const bounds = vs.concat([o.low, o.high].filter((v) => v !== null && v !== undefined));
    let lo = Math.min(...bounds), hi = Math.max(...bounds);
    if (hi === lo) { hi += 1; lo -= 1; }
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    const X = (x) => o.pad + (x - x0) / (x1 - x0) * (o.width - 2 * o.pad);
    const Y = (v) => o.height - o.pad + -(v - lo) / (hi - lo) * (o.height - 2 * o.pad);
    const root = svg("svg", { viewBox: `0 0 ${o.width} ${o.height}`, width: "100%", role: "img", "aria-label": o.title || "" });
    if (o.low !== null && o.low !== undefined && o.high !== null && o.high !== undefined) {
      root.append(svg("rect", { x: o.pad, y: Y(o.high), width: o.width - 2 * o.pad, height: Y(o.low) - Y(o.high), class: "band" }));
    }
    root.append(svg("polyline", { points: points.map((p, i) => `${X(xs[i])},${Y(p.value)}`).join(" "), class: "line" }));
    root.append(svg("text", { x: 2, y: Y(hi) + 4, class: "chart-label" }, fmtNumber(hi, 1)));
    root.append(svg("text", { x: 2, y: Y(lo), class: "chart-label" }, fmtNumber(lo, 1)));
    root.append(svg("text", { x: o.pad, y: o.height - 6, class: "chart-label" }, formatTime(new Date(x0).toISOString())));
    root.append(svg("text", { x: o.width - o.pad, y: o.height - 6, "text-anchor": "end", class: "chart-label" },
      formatTime(new Date(x1).toISOString())));
    container.replaceChildren(root);
  }

  return {
    $, t, kindName, videoPlatformText, el, button, api, qs, init, initPublic, addText, stream, poller, refreshSeconds,
    setLinkState, announce,
    showError, errorText, formatTime, fmtNumber, fmtPercent, downloadCsv, Table, barChart, lineChart,
    onLanguage: (fn) => langListeners.push(fn), lang: () => lang,
  };
})();

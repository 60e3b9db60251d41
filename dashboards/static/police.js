// Police dashboard: the live alarm list and acknowledgement. Vanilla JS, no build step.
"use strict";

(function () {
  const TOKEN_KEY = "careguard.token";
  const LANG_KEY = "careguard.lang";
  const PAGE_SIZE = 200;

  const TEXT = {
    zh: {
      title: "托育机构报警 · 公安接警台", logout: "退出", loginTitle: "请输入访问令牌", tokenLabel: "访问令牌",
      loginButton: "进入", boardTitle: "实时报警", unacked: "待确认", empty: "暂无报警",
      colFacility: "机构", colZone: "区域", colKind: "类型", colRaised: "报警时间（现场）",
      colDelivered: "送达公安时间", colDeliveryMs: "送达耗时 (ms)", colState: "状态", colAck: "确认",
      ack: "确认", acking: "确认中…", ackedBy: "已确认", active: "报警中", cleared: "已消除",
      live: "实时", reconnecting: "重连中", offline: "未连接", badToken: "令牌无效或已过期，请重新输入",
      forbidden: "此令牌无权查看报警", loadFailed: "加载失败", ackFailed: "确认失败", newAlarm: "新报警",
      langSwitch: "English", langSwitchLang: "en",
      kinds: {
        panic: "一键报警", intrusion: "入侵", fire: "火警", tamper: "防拆", camera_fault: "摄像机故障",
        retention_breach: "录像保存不足", sensor_range: "传感器超限", device_offline: "设备离线",
        gateway_offline: "网关离线", police_link_down: "公安链路中断", test: "测试",
      },
    },
    en: {
      title: "Nursery alarms · Police desk", logout: "Sign out", loginTitle: "Enter your access token",
      tokenLabel: "Access token", loginButton: "Open", boardTitle: "Live alarms", unacked: "Unacknowledged",
      empty: "No alarms", colFacility: "Facility", colZone: "Zone", colKind: "Kind", colRaised: "Raised (on site)",
      colDelivered: "Delivered to police", colDeliveryMs: "Delivery (ms)", colState: "State", colAck: "Acknowledge",
      ack: "Acknowledge", acking: "Acknowledging…", ackedBy: "Acknowledged", active: "Active", cleared: "Cleared",
      live: "Live", reconnecting: "Reconnecting", offline: "Offline", badToken: "Token invalid or expired, enter it again",
      forbidden: "This token may not view alarms", loadFailed: "Loading failed", ackFailed: "Acknowledge failed",
      newAlarm: "New alarm", langSwitch: "中文", langSwitchLang: "zh-CN",
      kinds: {
        panic: "Panic button", intrusion: "Intrusion", fire: "Fire", tamper: "Tamper", camera_fault: "Camera fault",
        retention_breach: "Recording retention short", sensor_range: "Sensor out of range",
        device_offline: "Device offline", gateway_offline: "Gateway offline", police_link_down: "Police link down",
        test: "Test",
      },
    },
  };

  const $ = (id) => document.getElementById(id);
  const alarms = new Map();
  let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
  let source = null;
  let linkState = "offline";

  const t = (key) => TEXT[lang][key];

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }

  // Local wall-clock time with milliseconds: dispatchers compare times to the millisecond.
  function formatTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.dataset.i18n);
    }
    const toggle = $("lang-toggle");
    toggle.textContent = t("langSwitch");
    toggle.lang = t("langSwitchLang");
    setLinkState(linkState);
    render();
  }

  function setLinkState(state) {
    linkState = state;
    const el = $("link-state");
    el.dataset.state = state;
    el.textContent = t(state);
  }

  function announce(message) { $("announcer").textContent = message; }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function showLogin(message) {
    closeStream();
    sessionStorage.removeItem(TOKEN_KEY);
    $("board").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token-input").value = "";
    $("token-input").focus();
  }

  function showBoard() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("logout").hidden = false;
  }

  async function api(method, path) {
    const resp = await fetch(path, { method, headers: { Authorization: `Bearer ${token()}` } });
    if (resp.status === 401) { showLogin(t("badToken")); throw new Error("unauthorized"); }
    if (resp.status === 403) { showLogin(t("forbidden")); throw new Error("forbidden"); }
    if (!resp.ok) throw new Error(`${resp.status} ${await resp.text()}`);
    return resp.json();
  }

  function newestFirst(a, b) {
    if (a.sort_ts !== b.sort_ts) return a.sort_ts < b.sort_ts ? 1 : -1;
    return a.alarm_id < b.alarm_id ? 1 : -1;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function buildRow(a, fresh) {
    const tr = document.createElement("tr");
    tr.dataset.alarmId = a.alarm_id;
    tr.className = `kind-${a.kind}` + (a.acked_at ? "" : " unacked") + (fresh ? " fresh" : "");
    cell(tr, a.facility);
    cell(tr, a.zone || a.source);
    cell(tr, (TEXT[lang].kinds[a.kind] || a.kind), "kind");
    cell(tr, formatTime(a.raised_at), "time").title = a.raised_at || "";
    const delivered = cell(tr, formatTime(a.delivered_at), "time");
    delivered.title = a.receiver ? `${a.delivered_at} ← ${a.receiver}` : (a.delivered_at || "");
    cell(tr, a.delivery_ms === null ? "—" : String(a.delivery_ms), "num");
    cell(tr, t(a.state), `state-${a.state}`);
    const ackCell = cell(tr, "");
    if (a.acked_at) {
      const span = document.createElement("span");
      span.className = "acked";
      span.textContent = `${t("ackedBy")} · ${a.acked_by}`;
      const when = document.createElement("span");
      when.className = "acked-at";
      when.textContent = formatTime(a.acked_at);
      ackCell.append(span, when);
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "ack";
      button.textContent = t("ack");
      button.setAttribute("aria-label", `${t("ack")}: ${a.facility} ${a.zone || a.source} ${TEXT[lang].kinds[a.kind] || a.kind}`);
      button.addEventListener("click", () => acknowledge(a.alarm_id, button));
      ackCell.appendChild(button);
    }
    return tr;
  }

  const freshIds = new Set();

  function render() {
    const body = $("alarm-rows");
    const focusedId = document.activeElement && document.activeElement.closest("tr")
      ? document.activeElement.closest("tr").dataset.alarmId : null;
    const rows = [...alarms.values()].sort(newestFirst);
    body.replaceChildren(...rows.map((a) => buildRow(a, freshIds.has(a.alarm_id))));
    freshIds.clear();
    $("empty").hidden = rows.length > 0;
    $("unacked-count").textContent = String(rows.filter((a) => !a.acked_at).length);
    // Keep keyboard focus where it was when a live update redraws the table.
    if (focusedId) {
      const again = body.querySelector(`tr[data-alarm-id="${focusedId}"] button, tr[data-alarm-id="${focusedId}"]`);
      if (again && again.focus) again.focus();
    }
  }

  function upsert(a, live) {
    const known = alarms.has(a.alarm_id);
    const before = alarms.get(a.alarm_id);
    if (before && before.updated_at > a.updated_at) return;  // an older copy arriving late
    alarms.set(a.alarm_id, a);
    if (live && !known) {
      freshIds.add(a.alarm_id);
      announce(`${t("newAlarm")}: ${a.facility} ${a.zone || a.source} ${TEXT[lang].kinds[a.kind] || a.kind}`);
    }
  }

  async function loadList() {
    try {
      const page = await api("GET", `/api/alarms?limit=${PAGE_SIZE}`);
      for (const a of page.items) upsert(a, false);
      $("load-error").textContent = "";
      render();
    } catch (err) {
      if (err.message !== "unauthorized" && err.message !== "forbidden") {
        $("load-error").textContent = `${t("loadFailed")}: ${err.message}`;
      }
    }
  }

  function closeStream() {
    if (source) { source.close(); source = null; }
    setLinkState("offline");
  }

  function openStream() {
    closeStream();
    source = new EventSource(`/api/alarms/stream?token=${encodeURIComponent(token())}`);
    // Refetch on every (re)connection: whatever changed while the stream was down is in the list.
    source.addEventListener("open", () => { setLinkState("live"); loadList(); });
    source.addEventListener("alarm", (ev) => { upsert(JSON.parse(ev.data), true); render(); });
    source.addEventListener("resync", () => loadList());
    source.addEventListener("error", () => {
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) {
        setLinkState("offline");
        loadList();  // tells a rejected token (401) apart from a server that is down
      } else {
        setLinkState("reconnecting");
      }
    });
  }

  async function acknowledge(alarmId, button) {
    button.disabled = true;
    button.textContent = t("acking");
    try {
      const result = await api("POST", `/api/alarms/${encodeURIComponent(alarmId)}/ack`);
      upsert(result.alarm, false);
      render();
    } catch (err) {
      button.disabled = false;
      button.textContent = t("ack");
      if (err.message !== "unauthorized" && err.message !== "forbidden") {
        $("load-error").textContent = `${t("ackFailed")}: ${err.message}`;
      }
    }
  }

  function start() {
    showBoard();
    loadList();
    openStream();
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    start();
  });
  $("logout").addEventListener("click", () => { alarms.clear(); render(); showLogin(""); });
  $("lang-toggle").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, lang);
    applyLanguage();
  });

  applyLanguage();
  if (token()) start(); else showLogin("");
})();

// The scene of an alarm for the police card and the facility page: each zone camera's alarm clip
// (played in a <video>, fetched with the bearer token, so no token ever sits in a URL), and a
// live view that runs while it is open. No external script; words in Chinese and English.
"use strict";

window.CGScene = (function () {
  const WORDS = {
    zh: {
      clip: "报警录像", clipPending: "录像上传中（{n}/{m}）", clipNone: "无录像", clipMissing: "缺少画面",
      clipTruncated: "超出大小上限，仅保留报警前后部分", clipFrom: "起", live: "实时画面", liveStart: "查看实时画面",
      liveStop: "停止实时画面", liveWaiting: "正在连接摄像机…", liveEnded: "实时画面已停止", liveDelay: "延迟",
      camera: "摄像机",
    },
    en: {
      clip: "Alarm clip", clipPending: "Clip uploading ({n}/{m})", clipNone: "No footage", clipMissing: "Missing",
      clipTruncated: "Over the size cap: only the part around the alarm is kept", clipFrom: "from",
      live: "Live view", liveStart: "Open live view", liveStop: "Stop live view", liveWaiting: "Connecting to the camera…",
      liveEnded: "Live view stopped", liveDelay: "delay", camera: "Camera",
    },
  };
  const w = (key, vars) => {
    let s = WORDS[CG.lang()][key] || key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
    return s;
  };
  const el = (...args) => CG.el(...args);
  const time = (iso) => CG.formatTime(iso, false);
  // A camera by the name it was filed under (the id when the facility's names are not known).
  const camName = (facility, id) => { const p = facility && CG.placeOf(facility); return (p && p.cameras[id]) || id; };

  // --- clips ---------------------------------------------------------------------------------
  function clipFigure(clip, facility) {
    const caption = el("figcaption", {},
      el("strong", { text: `${w("clip")} · ${camName(facility, clip.camera_id)}` }),
      el("span", { text: clip.start ? ` ${w("clipFrom")} ${time(clip.start)}` : "" }));
    const fig = el("figure", { class: "clip", "data-camera": clip.camera_id }, caption);
    if (clip.missing.length) {
      fig.append(el("p", { class: "hint", text: `${w("clipMissing")}: ` +
        clip.missing.map((m) => `${time(m.start)}–${time(m.end)}`).join(", ") }));
    }
    if (clip.truncated) fig.append(el("p", { class: "hint", text: w("clipTruncated") }));
    return fig;
  }

  async function showClips(container, alarmId, isCurrent, facility) {
    const clips = await CG.api("GET", `/api/alarms/${encodeURIComponent(alarmId)}/clips`);
    if (!isCurrent()) return clips;
    const figures = await Promise.all(clips.map(async (clip) => {
      const fig = clipFigure(clip, facility);
      if (!clip.complete) {
        fig.append(el("p", { class: "empty", text: w("clipPending", { n: clip.received, m: clip.chunks }) }));
      } else if (!clip.size) {
        fig.append(el("p", { class: "empty", text: w("clipNone") }));
      } else {
        const blob = await CG.api("GET", `/api/clips/${encodeURIComponent(clip.clip_id)}`);
        const video = el("video", { controls: "", muted: "", playsinline: "", preload: "auto",
          "aria-label": `${w("clip")} ${camName(facility, clip.camera_id)}` });
        video.src = URL.createObjectURL(new Blob([blob], { type: "video/mp4" }));
        fig.insertBefore(video, fig.firstChild);
      }
      return fig;
    }));
    if (isCurrent()) container.replaceChildren(...figures);
    return clips;
  }

  // --- live view -----------------------------------------------------------------------------
  // Reads the NDJSON frame stream with the bearer token; `stop()` ends it (the server audits the view),
  // `relabel()` puts its words in the page's current language.
  function liveView(facility, camera) {
    const img = el("img", { class: "live-frame" });
    const status = el("p", { class: "hint", role: "status" });
    const caption = el("figcaption");
    const box = el("figure", { class: "live", "data-camera": camera }, img, caption, status);
    const ctrl = new AbortController();
    let lastUrl = null;
    let state = "liveWaiting";  // the status while it is a word of ours (not a frame's time or an error)
    const setState = (key) => { state = key; status.textContent = w(key); };
    const relabel = () => {
      img.alt = `${w("live")} ${camName(facility, camera)}`;
      caption.textContent = `${w("live")} · ${camName(facility, camera)}`;
      if (state) status.textContent = w(state);
    };
    relabel();
    (async () => {
      try {
        const resp = await fetch(`/api/facilities/${encodeURIComponent(facility)}/cameras/${encodeURIComponent(camera)}/live`,
          { headers: { Authorization: `Bearer ${sessionStorage.getItem("careguard.token")}` }, signal: ctrl.signal });
        if (!resp.ok) {
          let detail = await resp.text();
          try { detail = JSON.parse(detail).detail; } catch (e) { /* not JSON */ }
          state = null;
          status.textContent = `${resp.status} ${detail}`;
          return;
        }
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            const frame = JSON.parse(line);
            if (!frame.jpeg_b64) continue;
            const bytes = Uint8Array.from(atob(frame.jpeg_b64), (c) => c.charCodeAt(0));
            const url = URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" }));
            img.src = url;
            if (lastUrl) URL.revokeObjectURL(lastUrl);
            lastUrl = url;
            img.dataset.seq = frame.seq;
            img.dataset.ts = frame.ts;
            const delay = Date.now() - Date.parse(frame.ts);
            state = null;
            status.textContent = `${time(frame.ts)} · ${w("liveDelay")} ${Math.max(0, delay)} ms`;
          }
        }
        setState("liveEnded");
      } catch (err) {
        if (err.name !== "AbortError") { state = null; status.textContent = String(err.message || err); }
      }
    })();
    return { element: box, relabel, stop: () => { ctrl.abort(); setState("liveEnded"); } };
  }

  // A button per camera that opens and closes its live view inside `container`; `relabel()` after a
  // language switch (the page calls it: buttons and open views keep their state, not their words).
  function liveButtons(container, facility, cameras) {
    const views = new Map();
    const label = (btn, camera) => {
      btn.textContent = `${w(views.has(camera) ? "liveStop" : "liveStart")} · ${camName(facility, camera)}`;
    };
    const buttons = cameras.map((camera) => {
      const btn = el("button", { type: "button", class: "secondary", "aria-pressed": "false" });
      label(btn, camera);
      btn.addEventListener("click", () => {
        const open = views.get(camera);
        if (open) {
          open.stop();
          open.element.remove();
          views.delete(camera);
        } else {
          const view = liveView(facility, camera);
          views.set(camera, view);
          container.append(view.element);
        }
        btn.setAttribute("aria-pressed", String(views.has(camera)));
        label(btn, camera);
      });
      return btn;
    });
    const relabel = () => {
      buttons.forEach((btn, i) => label(btn, cameras[i]));
      for (const v of views.values()) v.relabel();
    };
    return { buttons, relabel,
      stopAll: () => { for (const v of views.values()) { v.stop(); v.element.remove(); } views.clear(); } };
  }

  return { showClips, liveView, liveButtons };
})();

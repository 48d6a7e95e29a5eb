/* kervan site tracker (/t/SITE_KEY.js). Stores and sends nothing before analytics consent:
 * kervan.push(["consent", {...}]), Google Consent Mode, or kervan's consent API. See README. */
((w, d, n) => {
  "use strict";
  if (w.kervan && w.kervan.status) return;
  let src = (d.currentScript || {}).src;
  if (!src) for (const s of d.scripts) if (/\/t\/st_[\w-]+\.js/.test(s.src)) src = s.src;
  const m = /^(https?:\/\/.+?)\/t\/(st_[\w-]{8,37})\.js([?#]|$)/.exec(src || "");
  if (!m) return;
  const L = w.location, API = m[1], KEY = m[2], SYNC = API + "/t/sync", K = `kervan:${KEY}:`,
    BATCH = 20, MAXQ = 100, def = {}, upd = {}, queued = w.kervan, H = w.history, ps = H.pushState,
    rs = H.replaceState, AB = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  let held = [], pending = [], granted = false, dead = false, busy = false, timer = 0, until = 0,
    fails = 0, sent = 0, hook = null, mode = null, own = null, vid = null, last = L.href,
    dl = null, seen = 0, polls = 0;
  const cut = (s, k) => (s ? String(s).slice(0, k || 2000) : undefined);
  const get = (s, k) => { try { return JSON.parse(w[s].getItem(K + k)); } catch (e) { return null; } };
  const put = (s, k, v) => {
    try { v ? w[s].setItem(K + k, JSON.stringify(v)) : w[s].removeItem(K + k); } catch (e) { /* off */ }
  };
  const rnd = k => w.crypto.getRandomValues(new Uint8Array(k));
  const rid = () => Array.from(rnd(22), x => AB[x & 63]).join("");
  const refCode = (s = "") => { // 6 of [A-Z2-9], unbiased
    while (s.length < 6) for (const x of rnd(8)) if (x < 238) s += "ABCDEFGHIJKLMNOPQRSTUVWXYZ23456789"[x % 34];
    return s.slice(0, 6);
  };
  let landing = { url: cut(L.href), referrer: cut(d.referrer) };

  const consent = () => hook || mode || own || {};
  const scan = () => { // Google Consent Mode commands in dataLayer
    const l = w.dataLayer;
    if (!l || !l.push) return;
    if (l !== dl) {
      const p = l.push;
      dl = l; seen = 0;
      l.push = function () { const r = p.apply(l, arguments); update(); return r; };
    }
    for (; seen < l.length; seen++) {
      const e = l[seen], o = e && e[2];
      if (!e || e[0] !== "consent" || !o || typeof o !== "object") continue;
      for (const k of ["analytics_storage", "ad_storage", "ad_user_data"]) {
        const v = o[k];
        if (v !== "granted" && v !== "denied") continue;
        if (e[1] === "update") upd[k] = v;
        // A default for some regions may be the visitor's: its denials count, not its grants.
        else if (e[1] === "default" && (v === "denied" || (!o.region && def[k] !== "denied"))) def[k] = v;
      }
    }
    const g = k => upd[k] || def[k], a = g("analytics_storage");
    mode = a && { analytics: a === "granted", ads: g("ad_storage") === "granted" && g("ad_user_data") !== "denied" };
  };
  const update = () => {
    scan();
    const c = consent();
    if (c.analytics && !granted && !dead) {
      granted = true;
      vid = get("localStorage", "v");
      if (!/^v_[\w-]{16,40}$/.test(vid)) put("localStorage", "v", (vid = "v_" + rid()));
      const l = get("sessionStorage", "l"), r = landing.referrer;
      // A campaign or another referring site starts a new landing; otherwise the session's stays.
      if (l && !/[?&](gclid|wbraid|gbraid|utm_[a-z]+)=/.test(landing.url) && !(r && r.split("/")[2] !== L.host)) {
        landing = l;
      } else put("sessionStorage", "l", landing);
      pending = (get("localStorage", "q") || []).concat(pending);
      add(held.splice(0));
    } else if (!c.analytics && granted) {
      granted = false; pending = []; held = []; vid = null;
      clearTimeout(timer); timer = 0;
      put("localStorage", "q"); put("localStorage", "v"); put("sessionStorage", "l");
    }
  };
  const readOwn = o => o && o.subject && o.proof &&
    fetch(`${API}/consent/${encodeURIComponent(o.subject)}`, { headers: { "X-Consent-Proof": o.proof }, credentials: "omit" })
      .then(r => r.ok && r.json())
      .then(s => {
        if (s && s.allowed) own = { analytics: !!s.allowed.analytics, ads: !!s.allowed.ads, subject: o.subject };
        update();
      }).catch(() => 0);

  const save = q => { // the server remembers event ids for 7 days: older ones are not resent
    q = q.filter(e => e.ts > Date.now() - 6 * 864e5).slice(-MAXQ);
    if (granted) put("localStorage", "q", q.length && q);
  };
  const later = () => {
    if (granted && pending.length && !timer) {
      timer = setTimeout(flush, Math.max(pending.length >= BATCH ? 0 : 1000, until - Date.now()));
    }
  };
  const add = evs => {
    save((get("localStorage", "q") || []).concat(evs));
    pending = pending.concat(evs).slice(-MAXQ);
    later();
  };
  const ev = (type, x) => {
    if (dead) return;
    const e = Object.assign({ id: rid(), type, ts: Date.now(), url: cut(L.href) }, x);
    if (granted) add([e]);
    else if (held.push(e) > 50) held.shift();
  };
  const pv = (ref, u = L.href) =>
    ev("page_view", { url: cut(u), title: cut(d.title, 300), referrer: cut(ref) });
  const device = (u = n.userAgent) =>
    /iPad|Tablet|Android(?!.*Mobi)/i.test(u) || (/Mac/.test(u) && n.maxTouchPoints > 1) ? "tablet"
      : /Mobi|iPhone|Android/i.test(u) ? "mobile" : "desktop";
  const body = (events, c = consent(), s = w.screen) => JSON.stringify({
    site: KEY, visitor: vid, sent_at: Date.now(),
    consent: { analytics: true, ads: !!c.ads, subject: c.subject || (own && own.subject) || null },
    context: { url: cut(L.href), referrer: cut(d.referrer), user_agent_hint: device(),
      language: n.language || null, screen: s ? s.width + "x" + s.height : null },
    landing, events
  });
  const flush = unload => {
    clearTimeout(timer); timer = 0;
    update();
    unload = unload === true;
    if (!granted || !pending.length || (busy && !unload)) return;
    if (until > Date.now() && !unload) return later();
    const batch = pending.splice(0, BATCH), data = body(batch);
    // Leaving the page: a beacon outlives it; the events stay queued until a later page is answered.
    if (unload && n.sendBeacon && n.sendBeacon(SYNC, new Blob([data], { type: "text/plain" }))) return;
    busy = true;
    // keepalive bodies are capped at 64 KB in flight (20 events with long URLs can exceed it).
    fetch(SYNC, { method: "POST", body: data, keepalive: data.length < 6e4, credentials: "omit",
      headers: { "Content-Type": "text/plain" } })
      .then(r => {
        const s = r.status;
        busy = false;
        if (s === 408 || s === 429 || s >= 500) return retry(batch, r.headers.get("Retry-After"));
        if (s === 403 || s === 404) { dead = true; pending = []; return put("localStorage", "q"); }
        // Answered (rejected events too: resending would not change that).
        const ids = new Set(batch.map(e => e.id));
        save((get("localStorage", "q") || []).filter(e => !ids.has(e.id)));
        fails = 0; sent += batch.length;
        later();
      }, () => { busy = false; retry(batch); });
  };
  const retry = (batch, after) => {
    if (!granted) return;
    pending = batch.concat(pending).slice(-MAXQ);
    let s = +after;
    if (after && isNaN(s)) s = (Date.parse(after) - Date.now()) / 1000;
    until = Date.now() + (s > 0 ? Math.min(s, 3600) * 1000 : Math.min(3e5, 500 * 2 ** ++fails));
    later();
  };

  const kindOf = h => /^tel:/i.test(h) ? "phone"
    : /^whatsapp:|^https?:\/\/([\w-]+\.)?(wa\.me|whatsapp\.com)(\/|$)|\/joinchat\//i.test(h) ? "whatsapp" : null;
  const dec = s => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (e) { return s; } };
  const withRef = (h, ref) => { // into the pre-filled text, percent-encoded as WhatsApp expects
    const i = (h + "#").indexOf("#"), b = h.slice(0, i), j = (b + "?").indexOf("?");
    let text = "";
    const q = b.slice(j + 1).split("&").filter(p => p && (p.slice(0, 5) !== "text=" || ((text = dec(p.slice(5))), 0)));
    text = text.replace(/\s*\(ref: [A-Z2-9]{6}\)$/, "");
    q.push("text=" + encodeURIComponent(`${text ? text + " " : ""}(ref: ${ref})`));
    return `${b.slice(0, j)}?${q.join("&")}${h.slice(i)}`;
  };
  const onClick = e => {
    const t = e.target;
    if (!t || !t.closest) return;
    const a = t.closest("a[href]"), tag = t.closest("[data-kervan-intent]"),
      kind = tag ? tag.getAttribute("data-kervan-intent") : a && kindOf(a.href);
    if (kind === "phone" || kind === "whatsapp") {
      const x = { kind, target: ((tag && tag.getAttribute("data-kervan-target")) || (a ? a.href : ""))
        .replace(/([?&])text=[^&#]*&?/, "$1").replace(/[?&]$/, "").slice(0, 255) };
      const link = a && kindOf(a.href) === "whatsapp" && !/chat\.whatsapp\.com|\/joinchat\//i.test(a.href);
      // The reference code is an identifier: only with consent, and in the link before it is followed.
      if (kind === "whatsapp" && granted && (tag || link)) {
        x.ref = refCode();
        if (tag) tag.setAttribute("data-kervan-ref", x.ref);
        if (link) a.href = withRef(a.href, x.ref);
      }
      ev("intent", { intent: x });
      return flush();
    }
    const c = t.closest("[data-kervan-click]");
    if (c) ev("click", { name: cut(c.getAttribute("data-kervan-click"), 64) });
  };
  const nav = () => {
    const u = L.href, prev = last;
    if (u.split("#")[0] === prev.split("#")[0]) return;
    last = u;
    // The URL of the navigation itself; the title is read a tick later, once the app set it.
    setTimeout(() => pv(prev, u));
  };
  const run = c => {
    if (!c || !c.length) return;
    const [k, a, p] = c;
    if (k === "consent") {
      hook = a && typeof a === "object"
        ? { analytics: !!a.analytics, ads: !!a.ads, subject: typeof a.subject === "string" ? a.subject : null } : null;
      update();
    } else if (k === "consent_subject") readOwn(a);
    else if (k === "event" && a) ev("custom", { name: cut(a, 64), props: p && typeof p === "object" ? p : undefined });
    else if (k === "page_view") pv(d.referrer);
  };

  H.pushState = function () { const r = ps.apply(this, arguments); nav(); return r; };
  H.replaceState = function () { const r = rs.apply(this, arguments); last = L.href; return r; };
  w.addEventListener("popstate", nav);
  d.addEventListener("click", onClick, true);
  d.addEventListener("visibilitychange", () => d.visibilityState === "hidden" && flush());
  w.addEventListener("pagehide", () => flush(true));
  w.addEventListener("online", () => { until = 0; flush(); });
  w.kervan = {
    push: (...cs) => cs.forEach(run),
    status: () => ({ site: KEY, consent: granted, held: held.length, pending: pending.length, sent })
  };
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", () => pv(d.referrer));
  else pv(d.referrer);
  if (queued && queued.length) [].forEach.call(queued, run);
  update();
  // A consent platform may create dataLayer after this script: look for it for a minute.
  const poll = setInterval(() => { if (dl || ++polls > 30) clearInterval(poll); update(); }, 2000);
})(window, document, navigator);

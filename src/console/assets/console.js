// Esker console: a dependency-free single-page app over /ui/api. Everything shown is put in
// the page with textContent or DOM attributes, never as HTML, so record contents cannot
// inject markup or scripts.
"use strict";

(function () {
  const API = "/ui/api/";
  const state = { auth: sessionStorage.getItem("esker.auth"), session: null, sparkTimer: null };

  // ---- DOM helpers --------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const main = () => document.getElementById("main");
  function show(...nodes) {
    const m = main();
    m.replaceChildren(...nodes.flat().filter(Boolean));
  }
  // Navigation number: a page whose data arrives after a newer navigation started is dropped,
  // so a slow answer never paints over the page the user went to since.
  let navigation = 0;
  function view() {
    const mine = navigation;
    return (...nodes) => { if (mine === navigation) show(...nodes); };
  }
  function table(headers, rows, numeric) {
    numeric = numeric || [];
    return el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: numeric.includes(i) ? "num" : null }, h)))),
      el("tbody", {}, rows.length ? rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { class: numeric.includes(i) ? "num" : null }, c))))
        : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "None."))));
  }
  const fmtBytes = (n) => {
    if (n === null || n === undefined) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  };
  const fmtNum = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const fmtTime = (ms) => (ms >= 0 ? new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC") : "–");
  const enc = encodeURIComponent;
  function notice(text, cls) { return el("div", { class: "notice " + (cls || "") }, text); }

  // ---- API ----------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path, opts) {
    opts = opts || {};
    const headers = { "X-Esker-Console": "1" };
    if (state.auth) headers.Authorization = "Basic " + state.auth;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(API + path, {
      method: opts.method || "GET",
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: "omit",
      cache: "no-store",
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401) {
      showLogin(state.auth ? "Wrong user or password." : "");
      throw new ApiError(401, "authentication required");
    }
    if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || resp.statusText);
    return data;
  }

  // ---- login --------------------------------------------------------------------------------
  function showLogin(message) {
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = message || "";
    document.getElementById("login-user").focus();
  }
  function utf8b64(s) {
    const bytes = new TextEncoder().encode(s);
    let bin = "";
    bytes.forEach((b) => { bin += String.fromCharCode(b); });
    return btoa(bin);
  }
  async function login(ev) {
    ev.preventDefault();
    const user = document.getElementById("login-user").value;
    const pass = document.getElementById("login-password").value;
    state.auth = utf8b64(user + ":" + pass);
    try {
      state.session = await api("session");
      sessionStorage.setItem("esker.auth", state.auth);
      document.getElementById("login").hidden = true;
      document.getElementById("login-password").value = "";
      renderWho();
      startSpark();
      route();
    } catch (e) {
      state.auth = null;
      if (!(e instanceof ApiError && e.status === 401)) showLogin(e.message);
    }
  }
  function logout() {
    state.auth = null;
    state.session = null;
    sessionStorage.removeItem("esker.auth");
    showLogin("Signed out.");
  }
  function renderWho() {
    const s = state.session;
    const who = document.getElementById("who");
    if (!s) { who.replaceChildren(); return; }
    who.replaceChildren(
      el("span", { id: "principal" }, s.principal),
      el("span", { class: "badge" }, s.cluster ? "node " + s.node_id + " (cluster)" : "node " + s.node_id),
      s.authentication_required ? el("button", { onclick: logout, id: "logout" }, "Sign out") : null);
  }

  // ---- sparklines ---------------------------------------------------------------------------
  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 120 26");
    svg.setAttribute("preserveAspectRatio", "none");
    const max = Math.max(1, ...values);
    const n = Math.max(values.length - 1, 1);
    const pts = values.map((v, i) => (i * 120 / n).toFixed(1) + "," + (25 - (v / max) * 23).toFixed(1));
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(line);
    return svg;
  }
  async function refreshSpark() {
    try {
      const t = await api("throughput");
      const s = t.samples;
      const last = s.length ? s[s.length - 1] : { bytes_in: 0, bytes_out: 0, messages_in: 0 };
      const fig = (label, key, fmt) => el("figure", { "data-series": key },
        sparkline(s.map((x) => x[key])), el("figcaption", {}, label + " " + fmt(last[key])));
      document.getElementById("spark").replaceChildren(
        fig("in", "bytes_in", (v) => fmtBytes(Math.round(v)) + "/s"),
        fig("out", "bytes_out", (v) => fmtBytes(Math.round(v)) + "/s"),
        fig("msgs", "messages_in", (v) => v.toFixed(1) + "/s"));
    } catch (e) { /* shown elsewhere */ }
  }
  function startSpark() {
    if (state.sparkTimer) return;
    refreshSpark();
    state.sparkTimer = setInterval(refreshSpark, 2000);
  }

  // ---- pages --------------------------------------------------------------------------------
  async function pageTopics() {
    const show = view();
    const topics = await api("topics");
    const rows = topics.map((t) => [
      el("a", { href: "#/topic/" + enc(t.name), class: "topic-link", "data-topic": t.name }, t.name),
      t.internal ? el("span", { class: "badge" }, "internal") : "",
      fmtNum(t.partition_count), fmtNum(t.records), fmtBytes(t.size_bytes),
    ]);
    const parts = [el("h1", {}, "Topics")];
    // Shown to everyone: CREATE may be granted per topic name; the broker decides.
    parts.push(createForm());
    parts.push(table(["Name", "", "Partitions", "Records", "Size"], rows, [2, 3, 4]));
    show(parts);
  }
  function createForm() {
    const msg = el("p", { id: "create-result" });
    const form = el("form", { class: "inline", id: "create-topic" },
      el("label", {}, "New topic", el("input", { id: "new-topic-name", required: true, pattern: "[a-zA-Z0-9._-]+", maxlength: 249 })),
      el("label", {}, "Partitions", el("input", { id: "new-topic-partitions", type: "number", min: 1, value: 1 })),
      el("label", {}, "Configs (key=value, one a line)", el("textarea", { id: "new-topic-configs", rows: 1, cols: 30 })),
      el("button", { type: "submit", id: "create-submit" }, "Create topic"), msg);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const configs = {};
      for (const line of document.getElementById("new-topic-configs").value.split("\n")) {
        const l = line.trim();
        if (!l) continue;
        const i = l.indexOf("=");
        if (i < 1) { msg.className = "error"; msg.textContent = "Configs are key=value lines."; return; }
        configs[l.slice(0, i).trim()] = l.slice(i + 1).trim();
      }
      const name = document.getElementById("new-topic-name").value.trim();
      const partitions = parseInt(document.getElementById("new-topic-partitions").value, 10) || 1;
      try {
        await api("topics", { method: "POST", body: { name, partitions, configs } });
        location.hash = "#/topic/" + enc(name);
      } catch (e) {
        msg.className = "error";
        msg.textContent = (e.status === 403 ? "Not allowed: " : "Failed: ") + e.message;
      }
    });
    return form;
  }

  async function pageTopic(name) {
    const show = view();
    const t = await api("topics/" + enc(name));
    const rows = t.partitions.map((p) => [
      el("a", { href: "#/topic/" + enc(name) + "/" + p.partition }, String(p.partition)),
      String(p.leader), p.replicas.join(","), p.isr.join(","),
      fmtNum(p.log_start_offset), fmtNum(p.log_end_offset), fmtBytes(p.size_bytes),
    ]);
    const cfg = Object.entries(t.configs || {}).map(([k, v]) => [k, v]);
    const del = t.can_delete ? el("button", {
      class: "danger", id: "delete-topic",
      onclick: async () => {
        if (!confirm("Delete topic " + name + " and all its records?")) return;
        try { await api("topics/" + enc(name), { method: "DELETE" }); location.hash = "#/topics"; }
        catch (e) { alert("Delete failed: " + e.message); }
      },
    }, "Delete topic") : null;
    show(el("h1", {}, "Topic ", el("span", { id: "topic-name" }, name)),
      el("p", { class: "muted" }, "id " + t.id + (t.stream ? " · Kinesis stream " + t.stream : "")),
      table(["Partition", "Leader", "Replicas", "ISR", "Log start", "Log end", "Size"], rows, [4, 5, 6]),
      el("h2", {}, "Config overrides"), table(["Key", "Value"], cfg),
      t.can_read ? el("p", {}, el("a", { href: "#/topic/" + enc(name) + "/0", id: "browse" }, "Browse records →")) : null,
      del);
  }

  // Record rendering: text, pretty JSON or hex of base64 bytes.
  function bytesOf(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function render(b64, mode) {
    if (b64 === null || b64 === undefined) return el("span", { class: "muted" }, "null");
    const bytes = bytesOf(b64);
    if (mode === "hex") {
      const lines = [];
      for (let i = 0; i < bytes.length; i += 16) {
        const chunk = Array.from(bytes.slice(i, i + 16));
        lines.push(i.toString(16).padStart(6, "0") + "  " + chunk.map((b) => b.toString(16).padStart(2, "0")).join(" "));
      }
      return el("pre", {}, lines.join("\n"));
    }
    const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    if (mode === "json") {
      try { return el("pre", {}, JSON.stringify(JSON.parse(text), null, 2)); }
      catch (e) { return el("pre", { class: "muted", title: "not JSON" }, text); }
    }
    return el("pre", {}, text);
  }

  async function pageRecords(name, partition, params) {
    const show = view();
    const t = await api("topics/" + enc(name));
    const mode = params.get("mode") || "text";
    const limit = params.get("limit") || "20";
    const q = new URLSearchParams({ partition: String(partition), limit });
    if (params.get("offset")) q.set("offset", params.get("offset"));
    else if (params.get("time")) {
      const ms = Date.parse(params.get("time"));
      if (!isNaN(ms)) q.set("timestamp", String(ms));
    }
    const page = await api("topics/" + enc(name) + "/records?" + q.toString());
    const go = (over) => {
      const p = new URLSearchParams({ mode, limit });
      for (const [k, v] of Object.entries(over)) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
      location.hash = "#/topic/" + enc(name) + "/" + partition + "?" + p.toString();
    };
    const partSel = el("select", { id: "partition" }, Array.from({ length: t.partition_count }, (_, i) =>
      el("option", { value: i, selected: i === partition }, String(i))));
    partSel.addEventListener("change", () => {
      location.hash = "#/topic/" + enc(name) + "/" + partSel.value + "?mode=" + mode + "&limit=" + limit;
    });
    const offIn = el("input", { id: "from-offset", type: "number", min: 0, value: params.get("offset") || "", placeholder: "latest" });
    const timeIn = el("input", { id: "from-time", type: "datetime-local", step: 1, value: params.get("time") || "" });
    const modeSel = el("select", { id: "mode" }, ["text", "json", "hex"].map((m) => el("option", { value: m, selected: m === mode }, m)));
    const limIn = el("input", { id: "limit", type: "number", min: 1, max: 500, value: limit });
    const form = el("form", { class: "controls", id: "browse-form" },
      el("label", {}, "Partition", partSel),
      el("label", {}, "From offset", offIn),
      el("label", {}, "or from time (local)", timeIn),
      el("label", {}, "Show as", modeSel),
      el("label", {}, "Records", limIn),
      el("button", { type: "submit", id: "browse-submit" }, "Show"),
      el("button", { type: "button", class: "secondary", id: "next-page", onclick: () => go({ offset: page.next_offset, mode: modeSel.value }) }, "Next page"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      go({ offset: offIn.value, time: offIn.value ? "" : timeIn.value, mode: modeSel.value, limit: limIn.value });
    });
    modeSel.addEventListener("change", () => go({ offset: params.get("offset"), time: params.get("time"), mode: modeSel.value }));
    const rows = page.records.map((r) => [
      String(r.offset), el("span", { title: r.timestamp_type }, fmtTime(r.timestamp)),
      render(r.key, mode), render(r.value, mode),
      r.headers.length ? el("pre", {}, r.headers.map((h) => h.key + ": " + (h.value === null ? "null" : new TextDecoder().decode(bytesOf(h.value)))).join("\n")) : "",
    ]);
    const tbl = table(["Offset", "Timestamp", "Key", "Value", "Headers"], rows);
    tbl.id = "records";
    show(el("h1", {}, el("a", { href: "#/topic/" + enc(name) }, name), " · partition " + partition),
      el("p", { class: "muted" }, "Log start " + fmtNum(page.log_start_offset) + " · high watermark " + fmtNum(page.high_watermark) +
        " · showing " + page.records.length + " from offset " + fmtNum(page.start_offset)),
      form, tbl);
  }

  async function pageGroups() {
    const show = view();
    const groups = await api("groups");
    show(el("h1", {}, "Consumer groups"),
      table(["Group", "State", "Type", "Members", "Lag"], groups.map((g) => [
        el("a", { href: "#/group/" + enc(g.group_id), "data-group": g.group_id }, g.group_id),
        g.state, g.type + (g.protocol_type ? " / " + g.protocol_type : ""), fmtNum(g.members),
        el("span", { class: "group-lag", "data-group": g.group_id }, fmtNum(g.lag)),
      ]), [3, 4]));
  }

  async function pageGroup(id) {
    const show = view();
    const g = await api("groups/" + enc(id));
    const total = g.offsets.reduce((a, o) => a + (o.lag || 0), 0);
    show(el("h1", {}, "Group ", el("span", { id: "group-id" }, id)),
      el("p", {}, "State ", el("span", { class: "badge", id: "group-state" }, g.state),
        " · total lag ", el("strong", { id: "group-lag" }, fmtNum(total))),
      el("h2", {}, "Members"),
      table(["Member", "Client", "Host", "Assignment"], g.members.map((m) => [
        m.member_id, m.client_id, m.client_host,
        m.assignment.map((a) => a.topic + " [" + a.partitions.join(",") + "]").join("; "),
      ])),
      el("h2", {}, "Committed offsets and lag"),
      table(["Topic", "Partition", "Committed", "Log end", "Lag"], g.offsets.map((o) => [
        el("a", { href: "#/topic/" + enc(o.topic) }, o.topic), String(o.partition),
        fmtNum(o.committed_offset), fmtNum(o.log_end_offset),
        el("span", { class: "lag", "data-topic": o.topic, "data-partition": o.partition }, fmtNum(o.lag)),
      ]), [1, 2, 3, 4]));
  }

  async function pageStreams() {
    const show = view();
    const s = await api("streams");
    const parts = [el("h1", {}, "Kinesis streams")];
    if (!s.endpoint) parts.push(notice("The Kinesis endpoint (kinesis.listener) is off on this broker; topics still map to streams."));
    for (const st of s.streams) {
      parts.push(el("h2", {}, st.stream + " ", el("span", { class: "badge" }, st.mode), " ",
        el("span", { class: "muted" }, st.open_shards + " open shard(s)" + (st.derived ? " · derived from the topic" : ""))));
      parts.push(table(["Shard", "Starting hash key", "Ending hash key", "Parent", "Open"], st.shards.map((sh) => [
        sh.shard_id, el("span", { class: "hash" }, sh.starting_hash_key), el("span", { class: "hash" }, sh.ending_hash_key),
        [sh.parent, sh.adjacent_parent].filter(Boolean).join(", "), sh.open ? "yes" : "closed",
      ])));
    }
    if (!s.streams.length) parts.push(el("p", { class: "muted" }, "No streams."));
    show(parts);
  }

  async function pageSecurity() {
    const show = view();
    const parts = [el("h1", {}, "ACLs and users")];
    try {
      const a = await api("acls");
      if (!a.enabled) parts.push(notice("No authorizer is configured (authorizer.class.name): every principal may do everything."));
      parts.push(el("h2", {}, "ACLs"), table(["Principal", "Host", "Operation", "Permission", "Resource", "Pattern"], a.acls.map((b) => [
        b.principal, b.host, b.operation, b.permission, b.resource_type + ":" + b.resource_name, b.pattern_type,
      ])));
      const u = await api("users");
      parts.push(el("h2", {}, "SCRAM users"), table(["User", "Mechanisms"], u.scram.map((x) => [
        x.user, x.mechanisms.map((m) => m.mechanism + " (" + m.iterations + " iterations)").join(", "),
      ])));
      if (u.plain.length) parts.push(el("h2", {}, "PLAIN users (sasl.plain.users)"), table(["User"], u.plain.map((x) => [x])));
    } catch (e) {
      if (e.status !== 403) throw e;
      parts.push(notice("Not allowed: " + e.message, "error"));
    }
    show(parts);
  }

  async function pageConfig() {
    const show = view();
    const c = await api("config");
    show(el("h1", {}, "Broker configuration"),
      el("p", { class: "muted" }, "Sensitive values are never shown."),
      table(["Key", "Value", "Source", ""], c.map((k) => [
        el("span", { title: k.doc }, k.name),
        k.sensitive ? el("span", { class: "muted" }, "(sensitive)") : el("span", { class: "hash" }, k.value),
        k.source, k.dynamic ? el("span", { class: "badge" }, "dynamic") : "",
      ])));
  }

  // ---- router -------------------------------------------------------------------------------
  async function route() {
    navigation++;
    const show = view();
    const hash = location.hash || "#/topics";
    const [path, query] = hash.slice(2).split("?");
    const params = new URLSearchParams(query || "");
    const seg = path.split("/").map(decodeURIComponent);
    for (const a of document.querySelectorAll("#nav a")) {
      const page = { topic: "topics", group: "groups" }[seg[0]] || seg[0] || "topics";
      a.classList.toggle("active", a.dataset.page === page);
    }
    try {
      if (seg[0] === "topic" && seg.length >= 3) await pageRecords(seg[1], parseInt(seg[2], 10) || 0, params);
      else if (seg[0] === "topic") await pageTopic(seg[1]);
      else if (seg[0] === "groups") await pageGroups();
      else if (seg[0] === "group") await pageGroup(seg[1]);
      else if (seg[0] === "streams") await pageStreams();
      else if (seg[0] === "security") await pageSecurity();
      else if (seg[0] === "config") await pageConfig();
      else await pageTopics();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      show(notice(e.message, "error"));
    }
  }

  async function start() {
    document.getElementById("login-form").addEventListener("submit", login);
    window.addEventListener("hashchange", route);
    try {
      state.session = await api("session");
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) show(notice(e.message, "error"));
      return;
    }
    renderWho();
    startSpark();
    route();
  }
  start();
})();

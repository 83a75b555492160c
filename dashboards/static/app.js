"use strict";
// The dashboard: every panel is drawn from its JSON endpoint, /api/panels/<name>.

const $ = (selector, root = document) => root.querySelector(selector);
const REASON_COLORS = {
  revoked: "#c0362c", expired_idle: "#e08a1e", expired_absolute: "#b8651b",
  context_mismatch: "#8e44ad", reauth_required: "#2f5bd3", unknown_session: "#5b6b82",
  duplicate_intent: "#16a085", stale_intent: "#7f8c8d", clock_skew: "#95a5a6",
  state_unavailable: "#34495e", malformed: "#2c3e50",
};
const PALETTE = ["#2f5bd3", "#c0362c", "#e08a1e", "#8e44ad", "#16a085", "#5b6b82", "#b8651b"];
const DRILL = { user: "user", user_id: "user", ip: "ip", from_ip: "ip", device: "device",
                device_id: "device", session_id: "session", mismatched_session: "session",
                reason: "reason", top_reason: "reason" };
const REFRESH_MS = 30000;
let panels = [];
const charts = {};
let timer = null;

function color(name, i) { return REASON_COLORS[name] || PALETTE[i % PALETTE.length]; }

function query(extra = {}) {
  const form = $("#filters"), params = new URLSearchParams();
  if (form.range.value === "custom") {
    if (form.from.value) params.set("from", new Date(form.from.value + "Z").toISOString());
    if (form.to.value) params.set("to", new Date(form.to.value + "Z").toISOString());
  } else {
    const to = new Date(), from = new Date(to - Number(form.range.value) * 1000);
    params.set("from", from.toISOString());
    params.set("to", to.toISOString());
  }
  if (form.app.value) params.set("app", form.app.value);
  if (form.action.value) params.set("action", form.action.value);
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  return params.toString();
}

function rangeMs() {
  const params = new URLSearchParams(query());
  return Date.parse(params.get("to")) - Date.parse(params.get("from"));
}

async function getJSON(url) {
  const answer = await fetch(url);
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || answer.statusText);
  return body;
}

function card(panel) {
  const el = document.createElement("section");
  el.className = "card" + (["stacked", "heatmap"].includes(panel.chart)
    || panel.name === "attempts" ? " wide" : "");
  el.dataset.panel = panel.name;
  el.innerHTML = `<span class="timing"></span><h3></h3><p class="about"></p><div class="body"></div>`;
  $("h3", el).textContent = panel.title;
  $(".about", el).textContent = panel.about;
  return el;
}

function cell(key, value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) {
    return value.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1").replace(/Z$/, "");
  }
  return String(value);
}

function table(rows, { drillable = true } = {}) {
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const columns = Object.keys(rows[0]);
  const head = columns.map((c) => `<th>${c.replaceAll("_", " ")}</th>`).join("");
  wrap.innerHTML = `<table><thead><tr>${head}</tr></thead><tbody></tbody></table>`;
  const body = $("tbody", wrap);
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const c of columns) {
      const td = document.createElement("td");
      const value = row[c];
      let filter = DRILL[c];
      if (c === "source") filter = row.scope === "ip" ? "ip" : null;
      if (typeof value === "number") td.className = "num";
      if (drillable && filter && value) {
        const a = document.createElement("a");
        a.textContent = cell(c, value);
        a.dataset.drill = filter;
        a.onclick = () => drill({ [filter]: value });
        td.append(a);
      } else {
        td.textContent = cell(c, value);
      }
      tr.append(td);
    }
    body.append(tr);
  }
  return wrap;
}

function chart(panel, body, config) {
  charts[panel.name]?.destroy();
  const canvas = document.createElement("canvas");
  body.append(canvas);
  charts[panel.name] = new Chart(canvas, config);
}

function buckets(from, to, seconds) {
  // Every bucket of the range, empty ones too: a time axis without holes.
  const step = seconds * 1000, out = [];
  for (let t = Math.floor(Date.parse(from) / step) * step; t < Date.parse(to); t += step) {
    out.push(new Date(t).toISOString().replace(".000Z", "Z"));
  }
  return out;
}

function bucketFor(rangeMs) {
  const nice = [60, 300, 900, 1800, 3600, 10800, 21600, 86400];
  return nice.find((s) => rangeMs / (s * 1000) <= 300) || 86400;
}

function stacked(panel, body, rows, answer) {
  const times = buckets(answer.from, answer.to, answer.bucket);
  const series = [...new Set(rows.map((r) => r[panel.series]))].sort();
  const index = new Map(times.map((t, i) => [t, i]));
  const datasets = series.map((s, i) => {
    const data = new Array(times.length).fill(0);
    for (const r of rows) if (r[panel.series] === s) data[index.get(r[panel.x])] = r[panel.value];
    return { label: s, data, backgroundColor: color(s, i), stack: "all" };
  });
  const labels = times.map((t) => t.slice(5, 16).replace("T", " "));
  chart(panel, body, { type: "bar", data: { labels, datasets }, options: {
    animation: false, maintainAspectRatio: false,
    scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { stacked: true, beginAtZero: true } },
    plugins: { legend: { position: "bottom" } } } });
}

function bars(panel, body, rows) {
  chart(panel, body, { type: "bar", data: {
    labels: rows.map((r) => r[panel.x]),
    datasets: [{ label: panel.value, data: rows.map((r) => r[panel.value]),
                 backgroundColor: "#e08a1e" }] },
    options: { animation: false, maintainAspectRatio: false,
               plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } } });
}

function heatmap(panel, body, rows) {
  const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const max = Math.max(1, ...rows.map((r) => r.blocked));
  const at = new Map(rows.map((r) => [`${r.weekday}-${r.hour}`, r.blocked]));
  const grid = document.createElement("div");
  grid.className = "heat";
  grid.append(Object.assign(document.createElement("div"), { className: "label" }));
  for (let h = 0; h < 24; h++) {
    grid.append(Object.assign(document.createElement("div"), { className: "label", textContent: h }));
  }
  days.forEach((day, d) => {
    grid.append(Object.assign(document.createElement("div"), { className: "label", textContent: day }));
    for (let h = 0; h < 24; h++) {
      const n = at.get(`${d + 1}-${h}`) || 0, box = document.createElement("div");
      box.style.background = n ? `rgba(192, 54, 44, ${0.15 + 0.85 * n / max})` : "#f0f2f6";
      box.title = `${day} ${h}:00 UTC: ${n} blocked`;
      if (n) box.textContent = n;
      grid.append(box);
    }
  });
  body.append(grid);
}

function kpis(rows) {
  const t = rows[0] || {};
  const fmt = (n) => (n ?? 0).toLocaleString("en");
  $("#kpi-blocked").textContent = fmt((t.denied || 0) + (t.stepped_up || 0));
  $("#kpi-denied").textContent = fmt(t.denied);
  $("#kpi-stepped").textContent = fmt(t.stepped_up);
  $("#kpi-share").textContent = `${((t.blocked_share || 0) * 100).toFixed(1)} %`;
}

async function draw(panel) {
  const el = $(`[data-panel="${panel.name}"]`);
  try {
    const extra = {};
    if (panel.params.bucket !== undefined) extra.bucket = bucketFor(rangeMs());
    const answer = await getJSON(`/api/panels/${panel.name}?${query(extra)}`);
    answer.bucket = extra.bucket;
    if (panel.chart === "kpis") { kpis(answer.rows); return; }
    const body = $(".body", el);
    body.replaceChildren();
    $(".timing", el).textContent = `${answer.rows.length} rows · ${answer.elapsed_ms} ms`;
    el.dataset.rows = answer.rows.length;
    if (!answer.rows.length) {
      body.innerHTML = `<div class="empty">Nothing in this range.</div>`;
    } else if (panel.chart === "stacked") stacked(panel, body, answer.rows, answer);
    else if (panel.chart === "bars") bars(panel, body, answer.rows);
    else if (panel.chart === "heatmap") heatmap(panel, body, answer.rows);
    else body.append(table(answer.rows));
  } catch (error) {
    if (!el) return;  // the headline figures keep their last values
    $(".body", el).innerHTML = `<div class="error"></div>`;
    $(".error", el).textContent = `Could not load: ${error.message}`;
    el.dataset.rows = "error";
  }
}

async function refresh() {
  await Promise.all(panels.map(draw));
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function drill(filter) {
  const [[key, value]] = Object.entries(filter);
  $("#drill-title").textContent = `Blocked attempts · ${key} ${value}`;
  const body = $("#drill-body");
  body.textContent = "Loading…";
  $("#drill").hidden = false;
  const answer = await getJSON(`/api/panels/attempts?${query({ ...filter, limit: 500 })}`);
  body.replaceChildren(answer.rows.length ? table(answer.rows, { drillable: false })
    : Object.assign(document.createElement("p"), { textContent: "None." }));
  $("#drill").dataset.rows = answer.rows.length;
}

async function fillFilters() {
  const form = $("#filters");
  const { apps, actions } = await getJSON(`/api/filters?${query()}`);
  for (const [select, values] of [[form.app, apps], [form.action, actions]]) {
    const keep = select.value;
    select.replaceChildren(new Option("all", ""), ...values.map((v) => new Option(v, v)));
    select.value = values.includes(keep) ? keep : "";
  }
}

function schedule() {
  clearInterval(timer);
  if ($("#filters").auto.checked) timer = setInterval(refresh, REFRESH_MS);
}

async function main() {
  const form = $("#filters");
  const params = new URLSearchParams(location.search);  // a shareable view
  if (params.get("from")) {
    form.range.value = "custom";
    form.from.value = params.get("from").slice(0, 19);
    if (params.get("to")) form.to.value = params.get("to").slice(0, 19);
  }
  panels = await getJSON("/api/panels");
  const grid = $("#panels");
  for (const panel of panels) if (panel.chart !== "kpis") grid.append(card(panel));
  form.range.onchange = () => form.querySelectorAll(".custom").forEach(
    (l) => { l.hidden = form.range.value !== "custom"; });
  form.range.onchange();
  form.onsubmit = async (event) => { event.preventDefault(); await fillFilters(); refresh(); };
  form.auto.onchange = schedule;
  $("#drill-close").onclick = () => { $("#drill").hidden = true; };
  await fillFilters();
  if (params.get("app")) form.app.value = params.get("app");
  await refresh();
  schedule();
}

main();

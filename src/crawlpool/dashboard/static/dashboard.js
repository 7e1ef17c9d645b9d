// The crawlpool dashboard page: live overview from Server-Sent Events (/api/events), tables polled
// from the JSON API. Every value goes into the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  row.appendChild(td);
  return td;
}

function fill(tbody, items, columns) {
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    columns.forEach((column) => cell(tr, column(item)));
    return tr;
  });
  tbody.replaceChildren(...rows);
}

function chart(history) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  if (history.length < 2) { svg.replaceChildren(); return; }
  const t0 = history[0][0], t1 = history[history.length - 1][0] || 1;
  const top = Math.max(1, ...history.map((p) => Math.max(p[2], p[3])));
  const x = (t) => (600 * (t - t0)) / Math.max(t1 - t0, 1e-9);
  const y = (v) => 195 - (190 * v) / top;
  const line = (index, cls) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("class", cls);
    path.setAttribute("points", history.map((p) => x(p[0]).toFixed(1) + "," + y(p[index]).toFixed(1)).join(" "));
    return path;
  };
  svg.replaceChildren(line(3, "line-done"), line(2, "line-queued"));
}

function overview(s) {
  const state = $("state");
  state.textContent = s.state_text;
  state.dataset.state = s.state;
  $("pages").textContent = fmt(s.pages) + (s.max_pages ? " of " + fmt(s.max_pages) : "");
  $("discovered").textContent = fmt(s.discovered);
  $("queued").textContent = fmt(s.queued);
  $("in_flight").textContent = fmt(s.in_flight);
  $("records").textContent = fmt(s.records);
  $("rate").textContent = s.pages_per_s === null ? "measuring" : s.pages_per_s.toFixed(1);
  $("bytes").textContent = bytes(s.bytes);
  $("eta").textContent = duration(s.eta_s);
  $("elapsed").textContent = duration(s.elapsed_s);
  $("hosts_counts").textContent = fmt(s.hosts_active) + " / " + fmt(s.hosts_waiting);
  const errors = Object.entries(s.errors);
  $("errors_line").textContent = errors.length
    ? "errors: " + errors.map(([code, n]) => code + " " + fmt(n)).join(", ")
    : "errors: none";
  chart(s.history);
  const live = $("live");
  live.dataset.updates = String(Number(live.dataset.updates) + 1);
  live.textContent = "live · updated " + new Date().toLocaleTimeString();
}

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

async function refreshTables() {
  try {
    const hosts = await getJSON("/api/hosts?limit=50&sort=" + encodeURIComponent($("host_sort").value));
    fill($("host_rows"), hosts.hosts, [
      (h) => h.host, (h) => fmt(h.queued), (h) => fmt(h.in_flight),
      (h) => h.delay_s + " s" + (h.blocked_for_s ? " (+" + h.blocked_for_s + " s blocked)" : ""),
      (h) => h.reason, (h) => h.robots || "", (h) => (h.last_error ? h.last_error.error : ""),
    ]);
    const errors = await getJSON("/api/errors");
    const codes = Object.entries(errors.by_code).sort((a, b) => b[1] - a[1]);
    fill($("error_rows"), codes, [
      ([code]) => code, ([, n]) => fmt(n),
      ([code]) => Object.entries(errors.by_cause[code] || {}).map(([c, n]) => c + " " + n).join(", "),
      () => "",
    ]);
    // Each example links to its record: a click shows it in the records table.
    codes.forEach(([code], i) => {
      const td = $("error_rows").children[i].lastChild;
      (errors.examples[code] || []).forEach((example) => {
        const link = document.createElement("a");
        link.href = "#records";
        link.className = "example";
        link.textContent = "#" + example.line + " " + example.url;
        link.addEventListener("click", () => { $("q_url").value = example.url; $("q_status").value = "";
          $("q_code").value = code; offset = 0; searchRecords(); });
        td.appendChild(link);
      });
    });
    const workers = await getJSON("/api/workers");
    fill($("worker_rows"), workers.workers, [
      (w) => w.worker_id, (w) => fmt(w.slots), (w) => fmt(w.in_flight),
      (w) => (w.urls_per_s === null ? "–" : w.urls_per_s.toFixed(1)),
      (w) => (w.heartbeat_age_s === null ? "never" : w.heartbeat_age_s + " s ago") + (w.alive ? "" : " (stale)"),
    ]);
  } catch (err) {
    $("live").textContent = "tables: " + err.message;
  }
}

let offset = 0;
const LIMIT = 50;

async function searchRecords() {
  const query = new URLSearchParams({ offset: String(offset), limit: String(LIMIT) });
  if ($("q_url").value) query.set("url", $("q_url").value);
  if ($("q_status").value) query.set("status", $("q_status").value);
  if ($("q_code").value) query.set("code", $("q_code").value);
  const response = await fetch("/api/records?" + query, { credentials: "same-origin" });
  const data = await response.json();
  if (!response.ok) { $("page_info").textContent = data.error; return; }
  fill($("record_rows"), data.records, [
    (r) => r.line, (r) => r.url, (r) => (r.status === null ? "none" : r.status), (r) => r.error || "", (r) => r.path || "",
  ]);
  $("page_info").textContent = data.records.length
    ? "records " + (offset + 1) + "–" + (offset + data.records.length) + (data.more ? " (more)" : "")
    : "no records";
  $("next").disabled = !data.more;
  $("prev").disabled = offset === 0;
}

function start() {
  const events = new EventSource("/api/events");
  events.addEventListener("status", (event) => overview(JSON.parse(event.data)));
  // The browser reconnects by itself; a crawl's own dashboard goes away when the crawl ends.
  events.onerror = () => {
    $("live").textContent = "not live: reconnecting (a crawl's --dashboard ends with the crawl; "
      + "crawlpool dashboard OUTPUT shows it afterwards)";
  };
  $("host_sort").addEventListener("change", refreshTables);
  $("record_search").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; searchRecords(); });
  $("next").addEventListener("click", () => { offset += LIMIT; searchRecords(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); searchRecords(); });
  refreshTables();
  searchRecords();
  setInterval(refreshTables, 3000);
}

document.addEventListener("DOMContentLoaded", start);

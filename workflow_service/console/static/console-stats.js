// Operations console, fleet panels: charts of a queue's last minutes (/stats, drawn
// with the vendored uPlot), the worker processes (/workers) and the scheduled workflows
// (/schedules). console.js announces each refresh with a "console:refresh" event
// naming the token's scope (null: an operator, every tenant); figures across tenants
// (charts, workers, the scheduler leader) are read for operators only.
// Every value from the server is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "governance.console.token";
  const $ = (id) => document.getElementById(id);
  const state = { charts: {}, chartKey: null, loading: false };

  async function get(path, params) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    const resp = await fetch(url, {
      headers: {
        Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY),
        Accept: "application/json",
      },
    });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      throw new Error((body && (body.description || body.title)) || "HTTP " + resp.status);
    }
    return body;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell ?? "";
      tr.appendChild(td);
    }
    return tr;
  }

  function badge(text) {
    return el("span", text, "badge state-" + text);
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  function ago(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s ago";
    return Math.round(seconds / 60) + " min ago";
  }

  // -- charts --------------------------------------------------------------------------

  function chartWidth() {
    return Math.max(320, Math.min(900, ($("stats-view").clientWidth || 900) / 2 - 20));
  }

  function draw(name, target, series, data) {
    const key = name + ":" + data[0].length;
    const existing = state.charts[name];
    if (existing && existing.key === key) {
      existing.plot.setData(data);
      return;
    }
    if (existing) existing.plot.destroy();
    const opts = {
      width: chartWidth(),
      height: 200,
      series: [{}, ...series],
      axes: [{}, { size: 56 }],
      scales: { x: { time: true } },
      legend: { live: true },
    };
    state.charts[name] = { key: key, plot: new window.uPlot(opts, data, target) };
  }

  function sum(values) {
    return values.reduce((total, v) => total + (v || 0), 0);
  }

  async function loadStats() {
    const queue = $("stats-queue").value;
    const minutes = $("stats-minutes").value;
    const body = await get("/stats", { queue: queue, minutes: minutes });
    const s = body.items[0];
    const chart = $("stats-throughput");
    // What the charts show, for people reading the numbers and for tests.
    chart.dataset.queue = s.queue;
    chart.dataset.processedTotal = String(sum(s.processed));
    chart.dataset.processedLast = String(s.processed[s.processed.length - 1] || 0);
    $("stats-summary").textContent =
      "last " + body.minutes + " min: processed " + sum(s.processed) + ", failed " +
      sum(s.failed) + ", retried " + sum(s.retried) + "; this minute: processed " +
      chart.dataset.processedLast + " (" + Math.round(body.bytes_per_queue / 1024) +
      " KiB per queue per day in Redis)";
    if (typeof window.uPlot !== "function") {
      $("stats-summary").textContent += " (charting library not loaded)";
      return;
    }
    draw("throughput", chart, [
      { label: "processed", stroke: "#2454c5", width: 2 },
      { label: "failed", stroke: "#b91c1c", width: 2 },
      { label: "retried", stroke: "#d97706", width: 2 },
    ], [s.t, s.processed, s.failed, s.retried]);
    draw("latency", $("stats-latency"), [
      { label: "latency p50 ms", stroke: "#059669", width: 1, points: { show: true, size: 5 } },
      { label: "latency p95 ms", stroke: "#059669", width: 2, dash: [6, 4], points: { show: true, size: 5 } },
      { label: "duration p50 ms", stroke: "#7c3aed", width: 1, points: { show: true, size: 5 } },
      { label: "duration p95 ms", stroke: "#7c3aed", width: 2, dash: [6, 4], points: { show: true, size: 5 } },
    ], [s.t, s.latency_p50_ms, s.latency_p95_ms, s.duration_p50_ms, s.duration_p95_ms]);
    chart.dataset.drawn = "true";
  }

  // -- workers -------------------------------------------------------------------------

  async function loadWorkers() {
    const body = await get("/workers");
    const tbody = $("workers").tBodies[0];
    tbody.replaceChildren();
    for (const w of body.items) {
      const tr = row([
        w.host, w.pid, w.queues.join(", "), w.threads, w.in_flight,
        ago(w.seconds_since_heartbeat), w.version, badge(w.state),
      ]);
      tr.dataset.worker = w.name;
      tr.dataset.state = w.state;
      tr.title = w.in_flight_jobs.length ? "in flight: " + w.in_flight_jobs.join(", ") : "";
      tbody.appendChild(tr);
    }
    if (!body.items.length) tbody.appendChild(row(["no worker has reported"]));
  }

  // -- schedules -----------------------------------------------------------------------

  async function loadSchedules(scope) {
    const body = await get("/schedules");
    const leader = $("schedules-leader");
    leader.hidden = scope !== null;
    if (scope === null) {
      leader.dataset.leader = body.leader ? body.leader.holder : "";
      leader.textContent = body.leader
        ? "Leader: " + (body.leader.host || body.leader.holder) +
          (body.leader.pid ? " pid " + body.leader.pid : "") + " (lock expires in " +
          Math.round(body.leader.expires_in_ms / 1000) + " s)"
        : "No scheduler holds the leader lock: housekeeping is not running.";
      leader.classList.toggle("error", !body.leader);
    }
    const tbody = $("schedules").tBodies[0];
    tbody.replaceChildren();
    for (const s of body.items) {
      const next = s.error ? s.error : s.next_fire_times.map(when).join(" · ");
      const last = s.last_run
        ? [badge(s.last_run.status), " " + when(s.last_run.created_at)]
        : ["never"];
      const lastCell = el("span");
      for (const part of last) lastCell.append(part);
      const tr = row([s.name, s.tenant, s.cron, s.timezone, badge(s.status), next, lastCell]);
      tr.cells[1].classList.add("all-tenants");
      tr.cells[5].dataset.testid = "next-fire-times";
      tr.dataset.workflowId = s.workflow_id;
      tbody.appendChild(tr);
    }
    if (!body.items.length) tbody.appendChild(row(["no scheduled workflows"]));
  }

  // -- refresh -------------------------------------------------------------------------

  async function refresh(scope) {
    if (state.loading) return;
    state.loading = true;
    const jobs = [["schedules", () => loadSchedules(scope)]];
    if (scope === null) jobs.push(["stats", loadStats], ["workers", loadWorkers]);
    try {
      await Promise.all(jobs.map(([name, load]) => load().then(
        () => { $(name + "-error").textContent = ""; },
        (e) => { $(name + "-error").textContent = name + " unavailable: " + e.message; },
      )));
    } finally {
      state.loading = false;
    }
  }

  document.addEventListener("console:refresh", (event) => {
    refresh(event.detail ? event.detail.scope : null);
  });

  document.addEventListener("DOMContentLoaded", () => {
    const redraw = () => {
      const scope = document.getElementById("app").classList.contains("tenant-scoped");
      if (!scope) loadStats().catch((e) => { $("stats-error").textContent = e.message; });
    };
    $("stats-queue").addEventListener("change", redraw);
    $("stats-minutes").addEventListener("change", redraw);
  });
})();

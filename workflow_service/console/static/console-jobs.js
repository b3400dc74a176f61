// Operations console, job search and the job page's detail. console.js asks
// window.consoleJobSearch() for the search fields when it loads the jobs table, and
// announces each job it shows with a "console:job" event; this script draws the job's
// arguments (redacted by the server), attempts, last traceback and execution (with its
// step log for a tenant's admin), and cancels the execution through
// POST /executions/{id}/cancel, then asks console.js to reload the job
// ("console:reload-job").
// Every value from the server is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "governance.console.token";
  const $ = (id) => document.getElementById(id);
  let shown = null; // the job drawn last

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
    const span = el("span", text || "", "badge state-" + String(text || "none"));
    span.dataset.state = text || "";
    return span;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function iso(localValue) {
    // A datetime-local field's value is the browser's local time.
    if (!localValue) return "";
    const d = new Date(localValue);
    return isNaN(d) ? "" : d.toISOString();
  }

  // The search fields of the jobs form; {} when none is filled.
  window.consoleJobSearch = function () {
    const search = {
      entity_id: $("search-entity").value.trim(),
      actor: $("search-actor").value.trim(),
      q: $("search-error").value.trim(),
      since: iso($("search-since").value),
      until: iso($("search-until").value),
    };
    for (const key of Object.keys(search)) if (!search[key]) delete search[key];
    return search;
  };

  async function post(path) {
    const resp = await fetch(new URL(path, window.location.origin), {
      method: "POST",
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

  function drawAttempts(job) {
    const tbody = $("job-attempts").tBodies[0];
    tbody.replaceChildren();
    for (const a of job.attempts || []) {
      const tr = row([
        a.attempt, a.worker || "", when(a.started_at),
        a.duration_ms === null || a.duration_ms === undefined ? "" : a.duration_ms + " ms",
        badge(a.outcome), a.error ? a.error.type + ": " + a.error.message : "",
      ]);
      tr.dataset.attempt = a.attempt;
      tbody.appendChild(tr);
    }
    if (!(job.attempts || []).length) tbody.appendChild(row(["not run yet"]));
  }

  function drawExecution(job) {
    const box = $("job-execution");
    box.replaceChildren();
    const ex = job.execution;
    $("job-cancel").hidden = true;
    if (!ex) { box.appendChild(el("p", "none", "muted")); return; }
    const p = el("p");
    p.appendChild(el("code", ex.id));
    p.appendChild(document.createTextNode(" "));
    p.appendChild(badge(ex.status));
    if (ex.workflow_name) p.appendChild(document.createTextNode(" " + ex.workflow_name));
    box.dataset.status = ex.status || "";
    box.appendChild(p);
    // The execution's own step log (its tenant's admin only).
    if (ex.steps) {
      const table = el("table");
      table.id = "job-execution-steps";
      const head = row(["#", "kind", "attempt", "status", "output / error"]);
      table.appendChild(el("thead")).appendChild(head);
      const tbody = table.appendChild(el("tbody"));
      for (const step of ex.steps) {
        const detail = step.error || (step.output ? JSON.stringify(step.output) : "");
        tbody.appendChild(row([
          step.position ?? "", step.kind || "", step.attempt ?? "", badge(step.status),
          typeof detail === "string" ? detail : JSON.stringify(detail),
        ]));
      }
      box.appendChild(table);
    }
    const open = ["pending", "running", "waiting_approval"].includes(ex.status);
    $("job-cancel").hidden = !(open && ex.cancel_href && ex.steps);
  }

  function draw(job) {
    shown = job;
    $("job-more").hidden = false;
    const args = $("job-arguments");
    args.textContent = job.arguments ? JSON.stringify(job.arguments, null, 2) : "not recorded";
    drawAttempts(job);
    const trace = $("job-traceback");
    trace.textContent = job.traceback || "";
    $("job-traceback-box").hidden = !job.traceback;
    drawExecution(job);
  }

  async function cancel() {
    const ex = shown && shown.execution;
    if (!ex || !window.confirm("Cancel this execution? Its running step finishes, no further step starts.")) return;
    const result = $("job-action-result");
    try {
      await post(ex.cancel_href);
    } catch (e) {
      result.textContent = "Cancel failed: " + e.message;
      return;
    }
    result.textContent = "Execution cancelled";
    document.dispatchEvent(new CustomEvent("console:reload-job"));
  }

  document.addEventListener("console:job", (event) => draw(event.detail.job));
  document.addEventListener("DOMContentLoaded", () => {
    $("job-cancel").addEventListener("click", cancel);
    $("search-clear").addEventListener("click", () => {
      for (const id of ["search-entity", "search-actor", "search-error", "search-since", "search-until"]) {
        $(id).value = "";
      }
      $("job-filters").dispatchEvent(new Event("change"));
    });
  });
})();

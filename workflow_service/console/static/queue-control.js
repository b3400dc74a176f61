// Operations console, queue control: pause and resume a queue (operators), retry every
// failed job matching a filter after counting them, clean failed jobs older than a time,
// and run a delayed job now. console.js draws the queue rows (each carries data-paused)
// and the job panel (data-state); this file adds its controls to them and its own panel,
// and asks for a refresh (the Refresh button) after each action.
// Every value from the server is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "governance.console.token";
  const $ = (id) => document.getElementById(id);
  const state = { scope: undefined, pending: null };

  async function post(path, body) {
    const resp = await fetch(new URL(path, window.location.origin), {
      method: "POST",
      headers: {
        Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY),
        Accept: "application/json",
        "Content-Type": "application/json",
      },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      throw new Error((data && (data.description || data.title)) || "HTTP " + resp.status);
    }
    return data;
  }

  function refresh() {
    $("refresh").click();
  }

  function say(id, text, isError) {
    const node = $(id);
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  // -- pause and resume, one control per queue row -------------------------------------

  function decorate(tr) {
    if (!tr.dataset || !tr.dataset.queue || tr.querySelector(".queue-control")) return;
    const paused = tr.dataset.paused === "true";
    const td = document.createElement("td");
    td.className = "queue-control";
    if (paused) {
      const flag = document.createElement("span");
      flag.className = "badge state-paused";
      flag.textContent = "paused";
      flag.dataset.testid = "queue-paused";
      const who = tr.dataset.pausedBy ? " by " + tr.dataset.pausedBy : "";
      const at = tr.dataset.pausedAt ? " at " + new Date(tr.dataset.pausedAt).toLocaleString() : "";
      flag.title = "paused" + who + at;
      td.appendChild(flag);
    }
    if (state.scope === null) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = paused ? "Resume" : "Pause";
      button.dataset.testid = paused ? "queue-resume" : "queue-pause";
      button.addEventListener("click", () => setPaused(tr.dataset.queue, !paused, button));
      td.appendChild(button);
    }
    tr.appendChild(td);
  }

  async function setPaused(queue, paused, button) {
    button.disabled = true;
    try {
      await post("/queues/" + encodeURIComponent(queue) + (paused ? "/pause" : "/resume"));
      say("qc-result", (paused ? "Paused " : "Resumed ") + queue);
    } catch (e) {
      say("qc-result", (paused ? "Pause" : "Resume") + " failed: " + e.message, true);
    }
    refresh();
  }

  function decorateAll() {
    for (const tr of $("queues").tBodies[0].rows) decorate(tr);
  }

  // -- retry every failed job matching a filter ------------------------------------------

  function isoOrNull(value) {
    return value ? new Date(value).toISOString() : null;
  }

  function filter() {
    const body = {};
    const fields = {
      queue: $("qc-queue").value,
      actor: $("qc-actor").value.trim(),
      error: $("qc-error").value.trim(),
      since: isoOrNull($("qc-since").value),
      until: isoOrNull($("qc-until").value),
    };
    for (const [key, value] of Object.entries(fields)) if (value) body[key] = value;
    return body;
  }

  function showConfirm(id, text, onConfirm) {
    state.pending = onConfirm;
    $("qc-confirm-text").textContent = text;
    $("qc-confirm").hidden = false;
    $("qc-confirm").dataset.action = id;
  }

  function hideConfirm() {
    state.pending = null;
    $("qc-confirm").hidden = true;
  }

  async function countFailed(event) {
    event.preventDefault();
    hideConfirm();
    const where = filter();
    let answer;
    try {
      answer = await post("/jobs/retry-failed", { ...where, dry_run: true });
    } catch (e) {
      say("qc-result", "Count failed: " + e.message, true);
      return;
    }
    say("qc-result", answer.count + " failed job" + (answer.count === 1 ? "" : "s") + " match");
    if (!answer.count) return;
    showConfirm("retry", "Retry " + answer.count + " failed job" +
      (answer.count === 1 ? "" : "s") + "?", async () => {
      try {
        const done = await post("/jobs/retry-failed", { ...where, confirmation: answer.confirmation });
        say("qc-result", "Retried " + done.retried + (done.skipped ? " (" + done.skipped +
          " taken meanwhile)" : ""));
      } catch (e) {
        say("qc-result", "Retry failed: " + e.message, true);
      }
      refresh();
    });
  }

  // -- clean failed jobs older than a time -----------------------------------------------

  function askClean(event) {
    event.preventDefault();
    const value = $("qc-before").value;
    if (!value) { say("qc-result", "Choose a time first", true); return; }
    const before = new Date(value);
    showConfirm("clean", "Drop every failed job that failed before " +
      before.toLocaleString() + ", with its dead letter?", async () => {
      try {
        const done = await post("/jobs/clean", { state: "failed", before: before.toISOString() });
        say("qc-result", "Cleaned " + done.records + " failed job" + (done.records === 1 ? "" : "s") +
          (done.dead_letters ? " and " + done.dead_letters + " dead letters without a record" : ""));
      } catch (e) {
        say("qc-result", "Clean failed: " + e.message, true);
      }
      refresh();
    });
  }

  // -- run a delayed job now -------------------------------------------------------------

  function syncPromote() {
    const panel = $("job-detail");
    $("job-promote").hidden = panel.hidden || panel.dataset.state !== "retrying";
  }

  async function promote() {
    const id = $("job-id").textContent;
    const result = $("job-action-result");
    try {
      await post("/jobs/" + encodeURIComponent(id) + "/promote");
      result.textContent = "Running now";
    } catch (e) {
      result.textContent = "Run now failed: " + e.message;
    }
    refresh();
  }

  document.addEventListener("console:refresh", (event) => {
    state.scope = event.detail ? event.detail.scope : null;
    for (const tr of $("queues").tBodies[0].rows) {
      const cell = tr.querySelector(".queue-control");
      if (cell) cell.remove();
    }
    decorateAll();
  });

  document.addEventListener("DOMContentLoaded", () => {
    const th = document.createElement("th");
    th.textContent = "control";
    $("queues").tHead.rows[0].appendChild(th);
    new MutationObserver(decorateAll).observe($("queues").tBodies[0], { childList: true });
    new MutationObserver(syncPromote).observe($("job-detail"), {
      attributes: true, attributeFilter: ["hidden", "data-state"],
    });
    $("qc-retry-form").addEventListener("submit", countFailed);
    $("qc-clean-form").addEventListener("submit", askClean);
    $("qc-confirm-yes").addEventListener("click", async () => {
      const action = state.pending;
      hideConfirm();
      if (action) await action();
    });
    $("qc-confirm-no").addEventListener("click", () => {
      hideConfirm();
      say("qc-result", "Nothing done");
    });
    $("job-promote").addEventListener("click", promote);
  });
})();

// Operations console: reads /queues, /jobs and /executions of this service with the
// token pasted once (kept in sessionStorage, i.e. for this tab). An operator's token
// shows every tenant's jobs; a tenant admin's shows that tenant's (the server decides,
// and /queues says which: its "tenant" is null for every tenant).
// Every value from the server is set with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "governance.console.token";
  const REFRESH_MS = 3000;
  const PAGE_SIZE = 50;
  const MAX_LIMIT = 200; // the largest page /jobs serves
  const $ = (id) => document.getElementById(id);
  const state = {
    job: null, execution: null, timer: null, busy: false,
    // The tenant this token sees (null: every tenant); undefined until /queues answers.
    scope: undefined,
    // Rows shown in the jobs table (grows with "More"; a refresh reloads as many) and
    // the cursor of the rows after them.
    jobsShown: PAGE_SIZE, jobsCursor: null,
    // Loads of the jobs table the operator asked for (filters, More) still running.
    jobsUserLoads: 0,
  };
  // Each load of a view takes a ticket; only the newest ticket's answer is shown, so a
  // slow refresh cannot put back rows for filters (or a job) the operator changed since.
  const tickets = {};

  function ticket(view) {
    const number = (tickets[view] || 0) + 1;
    tickets[view] = number;
    return () => tickets[view] === number;
  }

  // -- plumbing ------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  class HttpError extends Error {
    constructor(status, body) {
      super((body && (body.description || body.title)) || "HTTP " + status);
      this.status = status;
    }
  }

  async function api(method, path, params) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    const resp = await fetch(url, {
      method: method,
      headers: { Authorization: "Bearer " + token(), Accept: "application/json" },
    });
    let body = null;
    if (resp.status !== 204) {
      try { body = await resp.json(); } catch (e) { body = null; }
    }
    if (resp.status === 401) {
      signOut("Your token was refused: " + ((body && body.description) || "unauthorized"));
      throw new HttpError(401, body);
    }
    if (!resp.ok) throw new HttpError(resp.status, body);
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

  // Cells of figures across tenants (and the tenant column), hidden for a tenant's admin.
  function markAllTenants(tr, indexes) {
    for (const i of indexes) tr.cells[i].classList.add("all-tenants");
  }

  function showScope(tenant) {
    state.scope = tenant;
    const scoped = tenant !== null;
    $("app").classList.toggle("tenant-scoped", scoped);
    const scope = $("scope");
    scope.textContent = scoped ? "tenant " + tenant : "all tenants";
    scope.hidden = false;
    if (scoped) $("filter-tenant").value = "";
    // Executions are tenant data; an operator's token reads none.
    $("executions-view").hidden = !scoped;
    $("executions-note").hidden = scoped;
    $("deliveries-view").hidden = !scoped;
  }

  function link(text, onClick, testId) {
    const a = el("a", text);
    a.href = "#";
    if (testId) a.dataset.testid = testId;
    a.addEventListener("click", (event) => { event.preventDefault(); act(onClick); });
    return a;
  }

  // Runs what a click or a change asked for and shows its failure like a refresh's:
  // a refused token has signed out already (api() says why), anything else goes to the
  // header's status line.
  function act(action) {
    return Promise.resolve()
      .then(action)
      .catch((e) => { if (e.status !== 401) setStatus(errorText(e), true); });
  }

  function errorText(e) {
    return e instanceof HttpError ? e.message : "Request failed: " + (e.message || e);
  }

  function badge(state, label) {
    const span = el("span", label || state, "badge state-" + String(state || "none"));
    span.dataset.state = state || "";
    return span;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function precise(iso) {
    // Timeline entries are milliseconds apart when retries are quick.
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.toLocaleTimeString() + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function short(id) {
    return id ? String(id).slice(0, 8) : "";
  }

  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.className = isError ? "error" : "muted";
  }

  function fill(dl, pairs) {
    dl.replaceChildren();
    for (const [name, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      dl.appendChild(el("dt", name));
      const dd = document.createElement("dd");
      if (value instanceof Node) dd.appendChild(value); else dd.textContent = String(value);
      dl.appendChild(dd);
    }
  }

  // -- sign in / out -------------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopTimer();
    state.scope = undefined;
    $("scope").hidden = true;
    $("filter-tenant").value = ""; // the next token may see other tenants
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  function signIn(value) {
    sessionStorage.setItem(TOKEN_KEY, value.trim());
    $("login").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    refresh();
    startTimer();
  }

  function startTimer() {
    stopTimer();
    if ($("auto-refresh").checked) state.timer = setInterval(refresh, REFRESH_MS);
  }

  function stopTimer() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }

  // -- queues --------------------------------------------------------------------------

  async function loadQueues() {
    const body = await api("GET", "/queues");
    showScope(body.tenant ?? null);
    const tbody = $("queues").tBodies[0];
    tbody.replaceChildren();
    const select = $("filter-queue");
    for (const q of body.items) {
      const name = link(q.name, () => { select.value = q.name; return loadJobs("reset"); });
      name.title = q.carries + " · " + q.attempts + " attempts, " + q.backoff + " backoff";
      const tr = row([
        name, q.ready, q.delayed, q.in_flight, q.dead, q.queued, q.running, q.retrying,
        q.succeeded_kept + " / " + q.keep_succeeded, q.failed_kept + " / " + q.keep_failed,
        q.processed, q.failed, q.retried, q.workers ? q.workers.length : null,
      ]);
      markAllTenants(tr, [1, 2, 3, 4, 10, 11, 12, 13]);
      tr.dataset.queue = q.name;
      // queue-control.js draws the pause control from these.
      tr.dataset.paused = q.paused ? "true" : "false";
      tr.dataset.pausedBy = q.paused_by || "";
      tr.dataset.pausedAt = q.paused_at || "";
      tbody.appendChild(tr);
      if (![...select.options].some((o) => o.value === q.name)) {
        select.appendChild(el("option", q.name));
      }
    }
  }

  // -- jobs ----------------------------------------------------------------------------

  function jobFilters() {
    const filters = {
      queue: $("filter-queue").value,
      state: $("filter-state").value,
      tenant: $("filter-tenant").value.trim(),
    };
    // The tree filter lists root jobs by everything below them; it takes no state.
    const tree = $("filter-tree").value;
    if (tree) { filters.tree_state = tree; filters.state = ""; }
    // console-jobs.js: the search fields (a search takes no tree filter).
    const search = window.consoleJobSearch ? window.consoleJobSearch() : {};
    if (Object.keys(search).length) { delete filters.tree_state; Object.assign(filters, search); }
    return filters;
  }

  // What a job is about: the workflow's name and the entity's title beside the ids.
  function subjectText(subject) {
    if (!subject) return "";
    const parts = [];
    if (subject.workflow_name || subject.workflow_id) {
      parts.push(subject.workflow_name || short(subject.workflow_id));
    }
    if (subject.entity_title || subject.entity_id) {
      parts.push((subject.entity_type ? subject.entity_type + " " : "")
        + (subject.entity_title ? "“" + subject.entity_title + "”" : short(subject.entity_id)));
    }
    return parts.join(" · ");
  }

  // Who the tree waits for, or which job below failed and why.
  function causeText(cause) {
    if (!cause) return "";
    if (cause.waiting) {
      const who = cause.waiting.approvers.length ? cause.waiting.approvers.join(", ") : "a person";
      return "waits for " + who;
    }
    if (cause.ended && cause.ended.status === "cancelled") {
      return short(cause.job_id) + " cancelled: " + cause.ended.reason;
    }
    if (cause.error) return short(cause.job_id) + " " + cause.error.type + ": " + cause.error.message;
    return short(cause.job_id) + " " + (cause.actor || "");
  }

  function treeCell(job) {
    const cell = document.createElement("span");
    cell.dataset.testid = "tree";
    cell.appendChild(badge(job.tree_state));
    const text = causeText(job.tree_cause);
    if (text && job.tree_state !== "succeeded") {
      cell.appendChild(document.createTextNode(" " + text));
    }
    return cell;
  }

  function jobRow(job) {
    const tr = row([
      link(short(job.id), () => openJob(job.id), "job-link"),
      job.actor, subjectText(job.subject), job.tenant_id,
      badge(job.state, job.retried_as ? job.state + " · retried" : null), treeCell(job),
      job.attempt + (job.max_attempts ? " / " + job.max_attempts : ""),
      when(job.updated_at), job.error ? job.error.type + ": " + job.error.message : "",
    ]);
    markAllTenants(tr, [3]);
    tr.dataset.jobId = job.id;
    tr.dataset.state = job.state;
    tr.dataset.treeState = job.tree_state || "";
    return tr;
  }

  // mode "reset": the filters changed, show their first page; "more": add the next page;
  // "reload" (after an action) and "refresh" (the timer): load again as many rows as
  // are shown. A refresh gives way to a load the operator asked for.
  async function loadJobs(mode) {
    if (mode === "refresh" && state.jobsUserLoads > 0) return;
    const user = mode !== "refresh";
    if (user) state.jobsUserLoads += 1;
    try {
      await fetchJobs(mode);
    } finally {
      if (user) state.jobsUserLoads -= 1;
    }
  }

  async function fetchJobs(mode) {
    if (mode === "more" && !state.jobsCursor) return;
    const current = ticket("jobs");
    const filters = jobFilters();
    const tbody = $("jobs").tBodies[0];
    if (mode === "more") {
      const body = await api("GET", "/jobs", { ...filters, limit: PAGE_SIZE, cursor: state.jobsCursor });
      if (!current()) return;
      for (const job of body.items) tbody.appendChild(jobRow(job));
      state.jobsShown = tbody.rows.length;
      showMore(body.next_cursor);
      return;
    }
    // No "More" for rows of other filters while the first page of these is on its way.
    if (mode === "reset") showMore(null);
    const wanted = mode === "reset" ? PAGE_SIZE : Math.max(state.jobsShown, PAGE_SIZE);
    const rows = [];
    let cursor = null;
    do {
      const params = { ...filters, limit: Math.min(MAX_LIMIT, wanted - rows.length) };
      if (cursor) params.cursor = cursor;
      const body = await api("GET", "/jobs", params);
      if (!current()) return;
      rows.push(...body.items.map(jobRow));
      cursor = body.next_cursor;
    } while (cursor && rows.length < wanted);
    tbody.replaceChildren(...rows);
    state.jobsShown = wanted;
    showMore(cursor);
  }

  function showMore(cursor) {
    state.jobsCursor = cursor || null;
    $("jobs-more").hidden = !cursor;
  }

  async function openJob(id) {
    state.job = id;
    $("job-action-result").textContent = "";
    await loadJob();
  }

  async function loadJob() {
    if (!state.job) return;
    const current = ticket("job");
    let job;
    try {
      job = await api("GET", "/jobs/" + encodeURIComponent(state.job));
    } catch (e) {
      if (!current()) return;
      if (e.status === 404) { $("job-detail").hidden = true; state.job = null; return; }
      throw e;
    }
    if (!current()) return;
    const panel = $("job-detail");
    panel.hidden = false;
    panel.dataset.state = job.state;
    $("job-id").textContent = job.id;
    const parent = job.parent ? link(job.parent, () => openJob(job.parent)) : null;
    const retryOf = job.retry_of ? link(job.retry_of, () => openJob(job.retry_of)) : null;
    const retriedAs = job.retried_as
      ? link(job.retried_as, () => openJob(job.retried_as), "retried-as") : null;
    panel.dataset.treeState = job.tree_state || "";
    const cause = job.tree_cause;
    let causeNode = null;
    // A job below decides the tree (the job's own state and error are shown anyway).
    if (cause && job.tree_state !== "succeeded" && cause.job_id !== job.id) {
      causeNode = document.createElement("span");
      causeNode.dataset.testid = "tree-cause";
      causeNode.appendChild(link(short(cause.job_id), () => openJob(cause.job_id), "tree-cause-job"));
      causeNode.appendChild(document.createTextNode(" "));
      causeNode.appendChild(document.createTextNode(
        cause.waiting ? causeText(cause) + " (" + cause.waiting.status + ")" : causeText(cause)
          .replace(short(cause.job_id) + " ", "")));
    }
    fill($("job-fields"), [
      ["state", badge(job.state)],
      ["tree", badge(job.tree_state)],
      ["tree detail", causeNode],
      ["about", subjectText(job.subject)],
      ["waits for", job.waiting ? causeText({ waiting: job.waiting }).replace("waits for ", "") : null],
      ["queue", job.queue], ["actor", job.actor], ["tenant", job.tenant_id],
      ["attempt", job.attempt + (job.max_attempts ? " of " + job.max_attempts : "")],
      ["enqueued", when(job.enqueued_at)], ["started", when(job.started_at)],
      ["finished", when(job.finished_at)], ["next retry", when(job.next_retry_at)],
      ["error", job.error ? job.error.type + ": " + job.error.message : null],
      ["result", job.result ? (job.result.value === null ? "stored" : JSON.stringify(job.result.value)) : null],
      ["parent", parent], ["retry of", retryOf], ["retried as", retriedAs],
      ["dead-lettered", job.dead_lettered ? "yes" : null],
    ]);
    const progress = $("job-progress");
    progress.hidden = !job.progress;
    if (job.progress) {
      $("job-progress-bar").value = job.progress.percent;
      $("job-progress-text").textContent = job.progress.percent + "% " + job.progress.message;
    }
    const timeline = $("job-timeline");
    timeline.replaceChildren();
    for (const entry of job.timeline) {
      const li = el("li");
      li.appendChild(badge(entry.state));
      let text = " " + precise(entry.at);
      if (entry.attempt) text += " · attempt " + entry.attempt;
      if (entry.next_retry_at) text += " · next attempt at " + precise(entry.next_retry_at);
      if (entry.error) text += " · " + entry.error.type + ": " + entry.error.message;
      if (entry.retried_as) text += " · retried as " + entry.retried_as;
      li.appendChild(document.createTextNode(text));
      timeline.appendChild(li);
    }
    const children = $("job-children");
    children.replaceChildren();
    for (const child of job.children.items) {
      const li = el("li");
      li.appendChild(link(short(child.id), () => openJob(child.id)));
      li.appendChild(document.createTextNode(" " + (child.actor || "") + " "));
      li.appendChild(badge(child.state));
      if (child.tree_state && child.tree_state !== child.state) {
        li.appendChild(document.createTextNode(" below: "));
        li.appendChild(badge(child.tree_state));
      }
      children.appendChild(li);
    }
    if (!job.children.total) children.appendChild(el("li", "none", "muted"));
    const dead = job.state === "failed" && job.dead_lettered && !job.retried_as;
    $("job-retry").hidden = !dead;
    $("job-delete").hidden = job.state !== "failed";
    // console-jobs.js draws the arguments, attempts, traceback and execution.
    document.dispatchEvent(new CustomEvent("console:job", { detail: { job } }));
  }

  async function retryJob() {
    const result = $("job-action-result");
    let body;
    try {
      body = await api("POST", "/jobs/" + encodeURIComponent(state.job) + "/retry");
    } catch (e) {
      result.textContent = "Retry failed: " + errorText(e);
      return;
    }
    result.textContent = "Sent again as " + body.id;
    await act(async () => {
      await openJob(body.id);
      result.textContent = "Retry of " + body.retry_of;
      await loadJobs("reload");
    });
  }

  async function deleteJob() {
    if (!window.confirm("Drop this failed job and its dead letter?")) return;
    try {
      await api("DELETE", "/jobs/" + encodeURIComponent(state.job));
    } catch (e) {
      $("job-action-result").textContent = "Delete failed: " + errorText(e);
      return;
    }
    closeJob();
    await act(() => loadJobs("reload"));
  }

  function closeJob() {
    state.job = null;
    ticket("job"); // an answer still on its way is for the closed panel
    $("job-detail").hidden = true;
  }

  // -- executions ----------------------------------------------------------------------

  function items(body) {
    return Array.isArray(body) ? body : (body.items || body.executions || []);
  }

  async function loadExecutions() {
    const current = ticket("executions");
    const body = await api("GET", "/executions", {
      status: $("filter-execution-status").value, limit: 50,
    });
    if (!current()) return;
    const tbody = $("executions").tBodies[0];
    tbody.replaceChildren();
    for (const ex of items(body)) {
      const tr = row([
        link(short(ex.id), () => openExecution(ex.id), "execution-link"),
        ex.workflow_name || short(ex.workflow_id),
        (ex.entity_type ? ex.entity_type + " " : "")
          + (ex.entity_title ? "“" + ex.entity_title + "” " : "") + short(ex.entity_id),
        badge(ex.status),
        ex.attempts ?? "",
        when(ex.updated_at || ex.finished_at || ex.started_at || ex.created_at),
        typeof ex.error === "string" ? ex.error : (ex.error ? JSON.stringify(ex.error) : ""),
      ]);
      tr.dataset.executionId = ex.id;
      tbody.appendChild(tr);
    }
  }

  async function loadDeliveries() {
    const current = ticket("deliveries");
    const body = await api("GET", "/deliveries", {
      status: $("filter-delivery-status").value, limit: 20,
    });
    if (!current()) return;
    const tbody = $("deliveries").tBodies[0];
    tbody.replaceChildren();
    for (const d of items(body)) {
      const tr = row([
        short(d.id), d.channel, d.url || d.recipient, badge(d.status), d.attempts,
        when(d.last_attempt_at), when(d.next_resend_at), d.resends ?? "", d.error || "",
      ]);
      tr.dataset.deliveryId = d.id;
      tbody.appendChild(tr);
    }
  }

  async function openExecution(id) {
    state.execution = id;
    await loadExecution();
  }

  async function loadExecution() {
    if (!state.execution) return;
    const current = ticket("execution");
    const ex = await api("GET", "/executions/" + encodeURIComponent(state.execution));
    if (!current()) return;
    $("execution-detail").hidden = false;
    $("execution-id").textContent = ex.id;
    fill($("execution-fields"), [
      ["status", badge(ex.status)],
      ["workflow", ex.workflow_name || ex.workflow_id],
      ["workflow version", ex.workflow_version],
      ["entity", (ex.entity_type || "") + " " + (ex.entity_title ? "“" + ex.entity_title + "” " : "")
        + (ex.entity_id || "")],
      ["event", ex.event_type ? ex.event_type + " " + ex.event_id : ex.event_id],
      ["attempts", ex.attempts],
      ["job", ex.job && ex.job.id ? link(ex.job.id, () => openJob(ex.job.id), "execution-job") : null],
      ["started", when(ex.started_at)], ["finished", when(ex.finished_at)],
      ["error", typeof ex.error === "string" ? ex.error : (ex.error ? JSON.stringify(ex.error) : null)],
    ]);
    const tbody = $("execution-steps").tBodies[0];
    tbody.replaceChildren();
    for (const step of ex.steps || []) {
      const detail = step.error || (step.output ? JSON.stringify(step.output) : "");
      tbody.appendChild(row([
        step.position ?? "", step.kind || "", step.attempt ?? "", badge(step.status),
        when(step.started_at), when(step.finished_at),
        typeof detail === "string" ? detail : JSON.stringify(detail),
      ]));
    }
  }

  // -- refresh loop --------------------------------------------------------------------

  async function refresh() {
    if (state.busy || !token()) return;
    state.busy = true;
    try {
      await Promise.all([loadQueues(), loadJobs("refresh"), loadJob()]);
      try {
        if (state.scope !== null) {
          await loadExecutions();
          await loadExecution();
        }
      } catch (e) {
        if (e.status === 401) throw e;
        $("executions").tBodies[0].replaceChildren(row(["executions unavailable: " + e.message]));
      }
      try {
        if (state.scope !== null) await loadDeliveries();
      } catch (e) {
        if (e.status === 401) throw e;
        $("deliveries").tBodies[0].replaceChildren(row(["deliveries unavailable: " + e.message]));
      }
      setStatus("updated " + new Date().toLocaleTimeString());
      // console-stats.js draws the fleet panels (charts, workers, schedules).
      document.dispatchEvent(new CustomEvent("console:refresh", { detail: { scope: state.scope } }));
    } catch (e) {
      if (e.status !== 401) setStatus(errorText(e), true);
    } finally {
      state.busy = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value;
      if (value.trim()) signIn(value);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("refresh").addEventListener("click", refresh);
    $("auto-refresh").addEventListener("change", startTimer);
    $("job-filters").addEventListener("change", () => act(() => loadJobs("reset")));
    $("job-filters").addEventListener("submit", (e) => {
      e.preventDefault();
      act(() => loadJobs("reset"));
    });
    $("jobs-more").addEventListener("click", () => act(() => loadJobs("more")));
    $("execution-filters").addEventListener("change", () => act(loadExecutions));
    $("delivery-filters").addEventListener("change", () => act(loadDeliveries));
    $("job-retry").addEventListener("click", retryJob);
    $("job-delete").addEventListener("click", deleteJob);
    $("job-close").addEventListener("click", closeJob);
    document.addEventListener("console:reload-job", () => act(async () => {
      await loadJob();
      await loadJobs("reload");
    }));
    $("execution-close").addEventListener("click", () => {
      state.execution = null;
      ticket("execution");
      $("execution-detail").hidden = true;
    });
    if (token()) signIn(token()); else signOut("");
  });
})();

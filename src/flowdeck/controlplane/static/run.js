// flowdeck dashboard: the run-detail page. Polls /runs/ID/state about once a second while the run is
// unfinished and the tab is visible (node colours, facts, buttons; it stops for good on a 4xx answer),
// loads a selected task's panel (/runs/ID/tasks/TASK; `?task=TASK` opens one on load), shows the end of
// an attempt's log in a <pre>, and opens the graph of a sub-pipeline or one loop iteration (/runs/ID/graph).
"use strict";

(() => {
  const page = flowdeck.data("run-page");
  const dag = document.getElementById("run-dag");
  const panel = document.getElementById("task-panel");
  const crumbs = document.getElementById("graph-crumbs");
  if (!page || !dag || !panel) return;

  let state = flowdeck.data("run-state-data");
  let scope = ""; // the task path of the DAG shown: "" (the pipeline), "outer", "loop[2]", "outer/loop[0]"
  let graph = flowdeck.data("run-graph");
  let selected = null; // {id (node), path (task path)}
  let shownState = null; // the selected task's state when its panel was loaded
  let panelRequest = 0; // counts panel loads: only the latest one's answer is shown
  let logRequest = 0; // the same for logs
  // A log shows at most its last LOG_TAIL bytes (with a link to the whole of it).
  const LOG_TAIL = 1 << 20;

  const prefix = () => (scope ? `${scope}/` : "");

  // {node id: state} for the nodes of the DAG shown.
  function scopeStates() {
    const found = {};
    const start = prefix();
    for (const [path, value] of Object.entries(state.tasks)) {
      if (!path.startsWith(start)) continue;
      const rest = path.slice(start.length);
      if (!rest.includes("/")) found[rest] = value;
    }
    return found;
  }

  // -- the run's facts and buttons -------------------------------------------------------------------
  function showFacts() {
    for (const element of document.querySelectorAll("[data-fact]")) {
      const value = state.facts[element.dataset.fact] || "";
      if (element.textContent !== value) element.textContent = value;
      if (element.dataset.fact === "state") element.className = `state-badge state-${value}`;
      if (element.dataset.fact === "error") element.hidden = !value;
    }
    for (const button of document.querySelectorAll("button[data-states]")) {
      button.hidden = !button.dataset.states.split(" ").includes(state.state);
    }
  }

  // -- the task table: a row per task (up to its limit), states kept current ----------------------
  function syncTable() {
    const table = document.getElementById("task-table");
    if (!table) return;
    const body = table.tBodies[0];
    const rows = new Map([...body.rows].map((row) => [row.dataset.path, row]));
    const limit = Number(table.dataset.limit) || 500;
    const count = document.getElementById("task-count");
    if (count) count.textContent = String(Object.keys(state.tasks).length);
    const cached = new Set(state.cached);
    for (const [path, value] of Object.entries(state.tasks)) {
      let row = rows.get(path);
      if (!row) {
        if (rows.size >= limit) continue;
        row = body.insertRow();
        row.dataset.path = path;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.dataset.selectPath = path;
        button.textContent = path;
        row.insertCell().appendChild(button);
        row.insertCell().appendChild(document.createElement("span"));
        row.insertCell();
        rows.set(path, row);
      }
      const label = row.cells[1].querySelector("span") || row.cells[1].appendChild(document.createElement("span"));
      if (label.textContent !== value) {
        label.textContent = value;
        label.className = `state state-${value}`;
      }
      row.cells[2].textContent = cached.has(path) ? "cache hit" : "";
    }
  }

  // -- the graph and its breadcrumbs ---------------------------------------------------------------
  function showCrumbs() {
    crumbs.textContent = "";
    const levels = [["", "Pipeline"]];
    let path = "";
    for (const part of scope ? scope.split("/") : []) {
      path = path ? `${path}/${part}` : part;
      levels.push([path, part]);
    }
    levels.forEach(([path, label], index) => {
      if (index) crumbs.append(" / ");
      if (index === levels.length - 1) {
        const here = document.createElement("span");
        here.setAttribute("aria-current", "location");
        here.textContent = label;
        crumbs.appendChild(here);
      } else {
        const link = document.createElement("button");
        link.type = "button";
        link.className = "link";
        link.textContent = label;
        link.addEventListener("click", () => openGraph(path));
        crumbs.appendChild(link);
      }
    });
  }

  async function openGraph(path) {
    try {
      const found = path ? await flowdeck.api("GET", `${page.graph_url}?path=${encodeURIComponent(path)}`) : null;
      graph = found || flowdeck.data("run-graph");
      scope = path;
      flowdeck.graph.draw(dag, graph, scopeStates());
      showCrumbs();
      const first = dag.querySelector("g.node");
      if (first) first.focus();
    } catch (error) {
      flowdeck.say(`Cannot open the graph of ${path}: ${error.message}`, true);
    }
  }

  function nodeOf(id) {
    return graph.nodes.find((node) => node.id === id);
  }

  // A sub-pipeline opens its graph; a loop opens its first iteration (the panel picks others).
  function open(id) {
    const node = nodeOf(id);
    if (!node) return;
    if (node.kind === "dag") openGraph(prefix() + id);
    else if (node.kind === "loop") openGraph(`${prefix()}${id}[0]`);
  }

  // -- the task panel ------------------------------------------------------------------------------
  function placeholder(text) {
    panel.textContent = "";
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = text;
    panel.appendChild(note);
  }

  async function loadTask(focus) {
    if (!selected) return;
    const ticket = ++panelRequest;
    logRequest += 1; // a log still loading belongs to the panel being replaced
    const taskId = state.task_ids[selected.path];
    shownState = state.tasks[selected.path] || null;
    if (!taskId) {
      placeholder(`${selected.id} has not started yet.`);
      return;
    }
    let answer, text;
    try {
      answer = await fetch(page.task_url + encodeURIComponent(taskId), { credentials: "same-origin" });
      text = await answer.text();
    } catch (error) {
      if (ticket === panelRequest) placeholder(`Cannot load the task: ${error.message}`);
      return;
    }
    if (ticket !== panelRequest) return; // another task was selected meanwhile: its answer is the one to show
    if (!answer.ok) {
      placeholder(messageOf(text, answer));
      return;
    }
    panel.innerHTML = text; // our own server-rendered, escaped fragment; the page's CSP runs no inline script
    if (focus) panel.focus();
  }

  // The one-line message of an error answer (an HTML error page or plain text).
  function messageOf(text, answer) {
    if ((answer.headers.get("Content-Type") || "").startsWith("text/html")) {
      const error = new DOMParser().parseFromString(text, "text/html").querySelector(".error");
      if (error) return error.textContent.trim();
    }
    return text.trim() || `${answer.status} ${answer.statusText}`;
  }

  // The attempt's log, or its last LOG_TAIL bytes with a link to the whole (text/plain) above them.
  async function showLog(link) {
    const pre = document.getElementById("task-log");
    const title = document.getElementById("task-log-title");
    if (!pre) return;
    const ticket = ++logRequest;
    title.textContent = link.dataset.logTitle || "Log";
    title.hidden = false;
    pre.hidden = false;
    pre.classList.remove("error");
    pre.textContent = "Loading…";
    const url = new URL(link.dataset.log, location.href);
    url.searchParams.set("tail", String(LOG_TAIL));
    let answer, text;
    try {
      answer = await fetch(url, { credentials: "same-origin" });
      text = await answer.text();
    } catch (error) {
      answer = null;
      text = `Cannot load the log: ${error.message}`;
    }
    if (ticket !== logRequest) return;
    pre.textContent = "";
    if (answer && answer.ok) {
      const omitted = Number(answer.headers.get("X-Log-Omitted") || 0);
      if (omitted) {
        const note = document.createElement("span");
        note.className = "log-cut";
        note.append(`… ${(omitted / 1048576).toFixed(1)} MiB left out; `);
        const whole = document.createElement("a");
        whole.href = link.dataset.log;
        whole.target = "_blank";
        whole.textContent = "open the whole log";
        note.append(whole, "\n");
        pre.appendChild(note);
      }
      pre.append(text || "(the log is empty)");
    } else {
      pre.textContent = answer ? messageOf(text, answer) : text;
      pre.classList.add("error");
    }
    pre.focus();
  }

  dag.addEventListener("dag-select", (event) => {
    selected = { id: event.detail, path: prefix() + event.detail };
    loadTask(false);
  });
  dag.addEventListener("dag-open", (event) => open(event.detail));

  const table = document.getElementById("task-table");
  if (table) {
    table.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-select-path]");
      if (!button) return;
      const path = button.dataset.selectPath;
      const id = path.slice(path.lastIndexOf("/") + 1);
      selected = { id, path };
      flowdeck.graph.select(dag, path === prefix() + id ? id : null);
      loadTask(true);
    });
  }

  panel.addEventListener("click", (event) => {
    const log = event.target.closest("a[data-log]");
    if (log) {
      event.preventDefault();
      showLog(log);
      return;
    }
    const button = event.target.closest("button[data-open-graph]");
    if (button) openGraph(button.dataset.openGraph);
  });
  panel.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-open-loop]");
    if (!form) return;
    event.preventDefault();
    openGraph(`${form.dataset.openLoop}[${form.elements.iteration.value}]`);
  });

  // -- polling: every second while the tab is visible; a 4xx (run deleted, login expired) stops it ----
  let waiting = false; // a poll is due but the tab is hidden: the next `visibilitychange` makes it

  function schedule(delay) {
    setTimeout(() => {
      if (document.hidden) waiting = true;
      else poll();
    }, delay);
  }

  async function poll() {
    try {
      state = await flowdeck.api("GET", page.state_url);
    } catch (error) {
      if (error.status >= 400 && error.status < 500) {
        flowdeck.say(`Live updates stopped: ${error.message} (HTTP ${error.status}). Reload the page to try again.`,
          true);
        return;
      }
      schedule(3000); // the server is restarting or unreachable: try again a little later
      return;
    }
    flowdeck.graph.setStates(dag, scopeStates());
    showFacts();
    syncTable();
    if (selected && (state.tasks[selected.path] || null) !== shownState) loadTask(false);
    if (!state.finished) schedule(1000);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && waiting) {
      waiting = false;
      poll();
    }
  });

  // A link such as /runs/ID?task=TASK_ID (the artifact page's lineage) opens that task: the graph of the
  // DAG it is in, the node selected, and its panel.
  async function openLinkedTask() {
    const taskId = new URLSearchParams(location.search).get("task");
    if (!taskId) return;
    const path = Object.keys(state.task_ids).find((key) => state.task_ids[key] === taskId);
    if (path === undefined) {
      flowdeck.say(`Task ${taskId} is not a task of this run.`, true);
      return;
    }
    const cut = path.lastIndexOf("/");
    const parent = cut < 0 ? "" : path.slice(0, cut);
    if (parent) await openGraph(parent);
    selected = { id: path.slice(cut + 1), path };
    if (scope === parent) flowdeck.graph.select(dag, selected.id);
    loadTask(true);
  }

  showCrumbs();
  showFacts();
  openLinkedTask();
  if (!state.finished) schedule(1000);
})();

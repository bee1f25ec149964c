// toolrun's pages, made live: plain EventSource and fetch, no framework. Every page works
// without this file; with it, times show in the viewer's zone, the runs list and a run's log
// follow the daemon's event streams, and forms that change things ask first.
"use strict";

(function () {
  const body = document.body;

  function localTimes(root) {
    for (const node of root.querySelectorAll("time[datetime]")) {
      const moment = new Date(node.getAttribute("datetime"));
      if (!isNaN(moment)) {
        node.title = node.textContent;
        node.textContent = moment.toLocaleString(document.documentElement.lang);
      }
    }
    const utc = document.querySelector("[data-utc-note]");
    const local = document.querySelector("[data-local-note]");
    if (utc && local) {
      utc.hidden = true;
      local.hidden = false;
    }
  }

  function confirmations() {
    for (const form of document.querySelectorAll("form[data-confirm]")) {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    }
  }

  function later(action, wait) {
    let timer = null;
    return () => {
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          action();
        }, wait);
      }
    };
  }

  async function fetchPage(url) {
    const answer = await fetch(url, { credentials: "same-origin" });
    if (!answer.ok) return null;
    return new DOMParser().parseFromString(await answer.text(), "text/html");
  }

  // The runs list: a run that starts or ends anywhere refreshes the rows on show.
  function followRuns() {
    const rows = document.getElementById("run-rows");
    if (!rows || !window.EventSource) return;
    const refresh = later(async () => {
      const query = new URLSearchParams(location.search);
      query.set("fragment", "rows");
      const page = await fetchPage(location.pathname + "?" + query.toString());
      const fresh = page && page.getElementById("run-rows");
      const current = document.getElementById("run-rows");
      if (fresh && current) {
        current.replaceWith(document.adoptNode(fresh));
        localTimes(document.getElementById("run-rows"));
      }
    }, 2000);  // at most one refresh every two seconds, whatever the rate of runs
    const stream = new EventSource("/api/v1/events");
    stream.addEventListener("run", refresh);
  }

  // A run's page: its log grows as the run prints, resuming after a dropped connection
  // where it left off (the browser sends Last-Event-ID); its steps refresh as they change.
  function followRun() {
    const log = document.querySelector("[data-log]");
    if (!log) return;
    const runId = body.dataset.run;
    const follow = document.querySelector("[data-log-follow]");
    const search = document.querySelector("[data-log-search]");
    const stepChoice = document.querySelector("[data-log-step]");
    const several = document.querySelectorAll("table.steps tbody tr").length > 1;
    const onlyStep = stepChoice ? stepChoice.value : "";

    function matches(line) {
      const text = search ? search.value.toLowerCase() : "";
      return !text || line.textContent.toLowerCase().includes(text);
    }
    function filterLines() {
      for (const line of log.querySelectorAll(".line")) line.hidden = !matches(line);
    }
    function bottom() {
      if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
    }
    if (search) search.addEventListener("input", filterLines);
    if (stepChoice) {
      stepChoice.addEventListener("change", () => {
        const query = new URLSearchParams(location.search);
        if (stepChoice.value) query.set("step", stepChoice.value);
        else query.delete("step");
        location.search = query.toString();
      });
    }
    bottom();
    if (body.dataset.active !== "true" || !window.EventSource) return;

    function addLine(step, stream, text) {
      if (onlyStep && step !== onlyStep) return;
      const line = document.createElement("span");
      line.className = "line " + stream;
      line.dataset.step = step || "";
      if (step && several && stream !== "event") {
        const name = document.createElement("b");
        name.textContent = step;
        line.append(name, " ");
      }
      // As the server shows it: a huge line cut (the download has it whole).
      line.append((text.length > 2000 ? text.slice(0, 2000) + " […]" : text) + "\n");
      line.hidden = !matches(line);
      log.append(line);
    }
    const refreshSteps = later(async () => {
      const page = await fetchPage(location.pathname + location.search);
      if (!page) return;
      for (const selector of ["table.steps tbody", "[data-run-status]", "dl.facts", "div.actions"]) {
        const fresh = page.querySelector(selector);
        const current = document.querySelector(selector);
        if (fresh && current) current.replaceWith(document.adoptNode(fresh));
      }
      localTimes(document);
      confirmations();
    }, 200);

    const after = body.dataset.after || "0";
    const stream = new EventSource(`/api/v1/runs/${runId}/events?last_event_id=${after}`);
    stream.addEventListener("output", (message) => {
      const event = JSON.parse(message.data);
      for (const text of event.lines || []) addLine(event.step, event.stream || "stdout", text);
      bottom();
    });
    for (const kind of ["step_started", "step_finished", "step_skipped", "message", "run_paused", "run_resumed"]) {
      stream.addEventListener(kind, refreshSteps);
    }
    stream.addEventListener("run_finished", () => {
      stream.close();
      body.dataset.active = "false";
      // The artifacts are listed once the run has ended: the whole page, freshly.
      setTimeout(() => location.reload(), 300);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    confirmations();
    if (body.dataset.page === "runs") followRuns();
    if (body.dataset.page === "run") followRun();
  });
})();

// The mlrm dashboard: polls /api/state (one snapshot the dashboard's server samples for every
// browser), draws it, and sends the two actions. Plain JS, no build step; charts by uPlot.
// Every text that comes from a service is set with textContent, never parsed as HTML.
"use strict";

(() => {
  const TOKEN = "mlrm-dashboard-token";
  const cards = new Map(); // service name -> its card's parts
  const JOB_COLUMNS = ["job", "state", "trigger", "finished", "gate", "version", "reason"];
  const INPUTS_SHOWN = 8; // drift rows per card: the inputs that drifted most
  const PSI_FULL = 0.5; // PSI of a full bar (twice the "significant" threshold)
  let interval = 2000;
  let timer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function auth() {
    const token = sessionStorage.getItem(TOKEN);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "–";
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    try {
      const answer = await fetch("/api/state", { headers: auth(), cache: "no-store" });
      const body = await answer.json().catch(() => ({}));
      if (answer.status === 401 || answer.status === 403) {
        showLogin(body.detail || "a token is needed");
      } else if (!answer.ok) {
        showProblem(`the dashboard answered ${answer.status}: ${body.detail || ""}`);
      } else {
        document.getElementById("login").hidden = true;
        render(body);
      }
    } catch (error) {
      showProblem(`the dashboard does not answer (${error.message}); trying again`);
    }
    schedule(interval);
  }

  function showLogin(why) {
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = why;
  }

  function showProblem(text) {
    const problem = document.getElementById("problem");
    problem.hidden = !text;
    problem.textContent = text || "";
  }

  function render(snap) {
    interval = Math.max(500, (snap.interval || 2) * 1000);
    showProblem([snap.error, snap.training_error].filter(Boolean).join("; "));
    if (!snap.gateway) return;
    document.getElementById("title").textContent = `gateway ${snap.gateway}`;
    document.title = `${snap.gateway} · mlrm`;
    document.getElementById("subtitle").textContent = `${snap.manifest} · up since ${clock(snap.started_at)}`;
    document.getElementById("updated").textContent =
      `updated ${new Date(snap.now * 1000).toLocaleTimeString()} · every ${snap.interval} s · charts: last ${snap.minutes} min`;
    const tbody = document.querySelector("#services tbody");
    tbody.replaceChildren(...snap.services.map(row));
    const shown = new Set();
    for (const service of snap.services.filter((s) => s.kind === "ml")) {
      shown.add(service.name);
      update(cards.get(service.name) || card(service.name), service, snap);
    }
    for (const [name, parts] of cards) {
      if (!shown.has(name)) {
        parts.root.remove();
        cards.delete(name);
      }
    }
  }

  function row(service) {
    const recent = service.recent || {};
    const errors = recent.errors ?? null;
    const ready = service.ready || service.state || "–";
    return el(
      "tr",
      { "data-service": service.name },
      el("td", { text: service.name }),
      el("td", { class: "state state-" + String(ready).replace(/\s+/g, "-"), text: ready }),
      el("td", { class: "version num", text: service.version ?? "–" }),
      el("td", { class: "num", text: service.restarts ?? "–" }),
      el("td", { class: "num rate", text: fixed(recent.rate, 2) }),
      el("td", { class: "num", text: fixed(recent.p50, 1) }),
      el("td", { class: "num", text: fixed(recent.p99, 1) }),
      el("td", { class: "num", text: errors === null ? "–" : `${(errors * 100).toFixed(1)} %` }),
    );
  }

  // dots: draw every point (latency and errors have gaps while no request comes, so a lone point must show).
  function chart(container, title, lines, unit, dots) {
    const opts = {
      title,
      width: Math.max(220, container.clientWidth),
      height: 150,
      scales: { x: { time: true } },
      series: [
        {},
        ...lines.map(([label, stroke]) => ({
          label,
          stroke,
          width: 1.5,
          ...(dots ? { points: { show: true, size: 4 } } : {}),
          value: (u, v) => fixed(v, 2) + unit,
        })),
      ],
      axes: [{ space: 70 }, { size: 50 }],
      legend: { live: false },
    };
    return new uPlot(opts, [[], ...lines.map(() => [])], container);
  }

  function card(name) {
    const parts = {};
    parts.version = el("span", { class: "version", text: "–" });
    parts.state = el("span", { class: "state" });
    const charts = ["rate", "latency", "errors", "psi", "metric"].map((kind) =>
      el("div", { class: "chart " + kind }),
    );
    parts.labels = el("tbody");
    parts.labelsTitle = el("h3", { text: "predictions by label" });
    parts.driftTitle = el("h3", { text: "drift" });
    parts.driftSummary = el("p", { class: "drift-summary" });
    parts.drift = el("tbody");
    parts.performance = el("p", { class: "performance-summary" });
    parts.samples = el("p", { class: "samples" });
    parts.jobs = el("tbody");
    parts.note = el("p", { class: "note" });
    parts.retrain = el("button", { class: "retrain", type: "button", text: "Retrain now" });
    parts.select = el("select", { class: "rollback-version", "aria-label": "version to roll back to" });
    parts.rollback = el("button", { class: "rollback", type: "button", text: "Roll back" });
    parts.said = el("span", { class: "said", "aria-live": "polite" });
    parts.root = el(
      "section",
      { class: "card", "data-service": name },
      el("header", {}, el("h2", { text: name }), el("span", {}, "version ", parts.version), parts.state),
      el("div", { class: "charts" }, ...charts),
      parts.labelsTitle,
      el("table", { class: "labels" }, parts.labels),
      el(
        "section",
        { class: "monitoring" },
        parts.driftTitle,
        parts.driftSummary,
        el("table", { class: "drift" }, parts.drift),
        el("h3", { text: "live performance (from feedback)" }),
        parts.performance,
      ),
      el("h3", { text: "training" }),
      parts.samples,
      el(
        "table",
        { class: "jobs" },
        el("thead", {}, el("tr", {}, ...JOB_COLUMNS.map((h) => el("th", { text: h })))),
        parts.jobs,
      ),
      parts.note,
      el("div", { class: "actions" }, parts.retrain, el("label", {}, "version ", parts.select), parts.rollback, parts.said),
    );
    document.getElementById("cards").append(parts.root);
    parts.charts = {
      rate: chart(charts[0], "requests / s", [["req/s", "#0969da"]], "", false),
      latency: chart(charts[1], "latency, ms", [["p50", "#1a7f37"], ["p99", "#bf8700"]], " ms", true),
      errors: chart(charts[2], "errors, %", [["errors", "#cf222e"]], " %", true),
      drift: chart(charts[3], "drift, PSI", [["largest input", "#8250df"], ["predictions", "#bf8700"]], "", true),
      performance: chart(
        charts[4],
        "metric: live vs holdout",
        [["live", "#0969da"], ["holdout", "#57606a"]],
        "",
        true,
      ),
    };
    parts.retrain.addEventListener("click", () => act(name, "train", {}, parts));
    parts.rollback.addEventListener("click", () => {
      const version = Number(parts.select.value);
      if (version) act(name, "rollback", { version }, parts);
    });
    cards.set(name, parts);
    return parts;
  }

  function update(parts, service, snap) {
    parts.version.textContent = service.version ?? "–";
    const ready = service.ready || service.state || "–";
    parts.state.textContent = ready;
    parts.state.className = "state state-" + String(ready).replace(/\s+/g, "-");
    const s = service.series;
    parts.charts.rate.setData([s.t, s.rate]);
    parts.charts.latency.setData([s.t, s.p50, s.p99]);
    parts.charts.errors.setData([s.t, s.errors.map((e) => (e === null ? null : e * 100))]);
    parts.charts.drift.setData([s.t, s.psi, s.prediction_psi]);
    parts.charts.performance.setData([s.t, s.rolling, s.holdout]);
    labels(parts, service.labels || {}, snap.minutes);
    drift(parts, service.drift);
    performance(parts, service.performance);
    training(parts, service.training);
    parts.note.textContent = service.metrics_error || "";
  }

  function labels(parts, byLabel, minutes) {
    parts.labelsTitle.textContent = `predictions by label (last ${minutes} min · since start)`;
    const entries = Object.entries(byLabel);
    const most = Math.max(1, ...entries.map(([, n]) => n.recent));
    parts.labels.replaceChildren(
      ...entries.map(([label, n]) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = `${Math.round((100 * n.recent) / most)}%`;
        return el(
          "tr",
          { "data-label": label },
          el("td", { text: label }),
          el("td", { class: "num", text: String(Math.round(n.recent)) }),
          el("td", { class: "num", text: String(Math.round(n.total)) }),
          el("td", { class: "barcell" }, bar),
        );
      }),
    );
    if (!entries.length) parts.labels.append(el("tr", {}, el("td", { text: "no predictions yet" })));
  }

  function levelCell(level) {
    return el("td", { class: "level level-" + (level || "none-yet"), text: level || "–" });
  }

  function drift(parts, d) {
    parts.drift.replaceChildren();
    parts.driftSummary.className = "drift-summary";
    if (!d) {
      parts.driftTitle.textContent = "drift";
      parts.driftSummary.textContent = "no figures: the service's /metrics was not read";
      return;
    }
    if (!d.available) {
      parts.driftTitle.textContent = "drift";
      parts.driftSummary.className = "drift-summary reason";
      parts.driftSummary.textContent = d.reason;
      return;
    }
    const w = d.window;
    const span = w.seconds ? ` over the last ${w.seconds} s` : "";
    parts.driftTitle.textContent = `drift (PSI against the version's reference profile${span})`;
    const needed = w.min_rows === null || w.min_rows === undefined ? "" : ` of the ${w.min_rows} needed`;
    const enough = w.enough === true ? "enough" : w.enough === false ? "not enough for a level yet" : "";
    parts.driftSummary.textContent = `window: ${w.rows} rows${needed}` + (enough ? ` · ${enough}` : "");
    const rowOf = (name, psi, level, extra) => {
      const bar = el("span", { class: "bar level-" + (level || "none-yet") });
      bar.style.width = `${Math.min(100, Math.round((100 * (psi || 0)) / PSI_FULL))}%`;
      return el(
        "tr",
        { "data-input": name, class: extra || "" },
        el("td", { text: name }),
        el("td", { class: "num", text: fixed(psi, 3) }),
        levelCell(level),
        el("td", { class: "barcell" }, bar),
      );
    };
    const shown = d.inputs.slice(0, INPUTS_SHOWN).map((i) => rowOf(i.name, i.psi, i.level));
    parts.drift.append(...shown);
    if (d.inputs.length > INPUTS_SHOWN) {
      const more = `… ${d.inputs.length - INPUTS_SHOWN} more inputs, each with less drift`;
      parts.drift.append(el("tr", {}, el("td", { text: more, colspan: "4" })));
    }
    if (!d.inputs.length) {
      parts.drift.append(el("tr", {}, el("td", { text: "no rows in the window yet", colspan: "4" })));
    }
    parts.drift.append(rowOf("(predictions)", d.predictions.psi, d.predictions.level, "predictions"));
  }

  function performance(parts, p) {
    parts.performance.className = "performance-summary";
    if (!p) {
      parts.performance.textContent = "no figures: the service's /metrics was not read";
    } else if (!p.available) {
      parts.performance.className = "performance-summary reason";
      parts.performance.textContent = p.reason;
    } else {
      const span = p.seconds ? ` in the last ${p.seconds} s` : "";
      parts.performance.textContent =
        `${p.metric}: live ${fixed(p.rolling, 4)} · holdout ${fixed(p.holdout, 4)} · ` +
        `${p.rows ?? "–"} predictions scored${span}`;
    }
  }

  function training(parts, info) {
    const usable = Boolean(info);
    parts.retrain.disabled = !usable;
    parts.rollback.disabled = !usable;
    if (!usable) {
      parts.samples.textContent = "not trained by a training service here";
      parts.jobs.replaceChildren();
      return;
    }
    const s = info.samples || {};
    parts.samples.textContent =
      `samples: ${s.total ?? "–"} stored · ${s.new_since_current ?? "–"} new since the current version · ${s.quarantined ?? 0} quarantined`;
    parts.jobs.replaceChildren(
      ...info.jobs.map((job) => {
        const gate = job.promoted === true ? "promoted" : job.promoted === false ? "refused" : "–";
        return el(
          "tr",
          { "data-job": job.id },
          el("td", { text: job.id }),
          el("td", { class: job.state === "failed" ? "failed" : "", text: job.state }),
          el("td", { text: job.trigger }),
          el("td", { text: clock(job.finished_at) }),
          el("td", { class: gate, text: gate }),
          el("td", { text: job.version ?? "–" }),
          el("td", { text: job.reason || "" }),
        );
      }),
    );
    const versions = info.versions || [];
    const signature = JSON.stringify(versions.map((v) => [v.version, v.current, v.promoted]));
    if (parts.select.dataset.signature !== signature) {
      const chosen = parts.select.value;
      parts.select.replaceChildren(
        ...versions.map((v) => {
          const note = v.current ? " (current)" : v.promoted === false ? " (refused by the gate)" : "";
          const option = el("option", { value: v.version, text: `${v.version}${note}` });
          option.disabled = Boolean(v.current);
          return option;
        }),
      );
      if ([...parts.select.options].some((o) => o.value === chosen && !o.disabled)) parts.select.value = chosen;
      else {
        const first = [...parts.select.options].find((o) => !o.disabled);
        if (first) parts.select.value = first.value;
      }
      parts.select.dataset.signature = signature;
    }
  }

  async function act(name, action, body, parts) {
    parts.said.className = "said";
    parts.said.textContent = "…";
    try {
      const answer = await fetch(`/api/services/${encodeURIComponent(name)}/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...auth() },
        body: JSON.stringify(body),
      });
      const data = await answer.json().catch(() => ({}));
      if (!answer.ok) throw new Error(data.detail || `answered ${answer.status}`);
      parts.said.textContent =
        action === "train"
          ? `job ${data.job.id} ${data.created ? "queued" : "already running"}`
          : `version ${data.version} is current (was ${data.previous})`;
    } catch (error) {
      parts.said.className = "said error";
      parts.said.textContent = error.message;
    }
    schedule(0);
  }

  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN, document.getElementById("token").value.trim());
    schedule(0);
  });
  poll();
})();

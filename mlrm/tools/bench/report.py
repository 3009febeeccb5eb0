"""The report of a run: a table for the terminal, JSON, and one self-contained HTML page with SVG charts.

The HTML page loads nothing (no script, no font, no CDN): its charts are
SVG written here, so it opens on a gateway with no network and can be mailed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from mlrm.tools.bench.energy import NOT_MEASURED

Row = tuple[str, list[str]]
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _n(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pair(spread: dict[str, Any] | None, digits: int = 2) -> str:
    return "-" if not spread else f"{_n(spread['median'], digits)} / {_n(spread['p95'], digits)}"


def _energy(e: dict[str, Any] | None, per: int | None = None) -> str:
    if not e:
        return "not measured"
    text = f"{e['wh']:.4f} Wh"
    return text + (f" ({e['wh'] * 1000 / per:.3f} mWh/predict)" if per else "")


def target_rows(report: dict[str, Any]) -> list[Row]:
    """The side-by-side comparison: one row per figure, one column per target."""
    targets = report["targets"]

    def row(label: str, fn: Any) -> Row:
        return label, [fn(t) for t in targets]

    levels = sorted({level["concurrency"] for t in targets for level in t["throughput"]})

    def rate(c: int) -> Any:
        return lambda t: next((_n(x["requests_per_s"], 1) for x in t["throughput"] if x["concurrency"] == c), "-")

    def predicts(t: dict[str, Any]) -> int:
        return int((t["latency"]["round_trip_ms"] or {}).get("n", 0)) + sum(x["requests"] for x in t["throughput"])

    rows = [
        row("version served", lambda t: _n(t["version"])),
        row("rtt ms (median / p95)", lambda t: _pair(t["rtt_ms"])),
        row("predict round trip ms", lambda t: _pair(t["latency"]["round_trip_ms"])),
        row("  compute ms (Server-Timing)", lambda t: _pair(t["latency"]["compute_ms"], 3)),
        row("  ingest + transport ms", lambda t: _pair(t["latency"]["ingest_transport_ms"])),
        *[row(f"requests/s at concurrency {c}", rate(c)) for c in levels],
        row("server CPU % (mean / peak)",
            lambda t: f"{_n(t['server']['cpu_mean_pct'], 1)} / {_n(t['server']['cpu_peak_pct'], 1)}" if t["server"] else "-"),
        row("server peak memory MiB (PSS / RSS)",
            lambda t: f"{_n(t['server']['peak_pss_mib'], 1)} / {_n(t['server']['peak_rss_mib'], 1)}" if t["server"] else "-"),
        row("energy, this machine", lambda t: _energy(t["energy"], predicts(t))),
    ]  # fmt: skip
    if any(t.get("mqtt") for t in targets):
        rows += [
            row("mqtt round trip ms", lambda t: _pair((t.get("mqtt") or {}).get("round_trip_ms"))),
            row("  mqtt compute ms (took_ms)", lambda t: _pair((t.get("mqtt") or {}).get("compute_ms"), 3)),
            row("  mqtt ingest + transport ms", lambda t: _pair((t.get("mqtt") or {}).get("ingest_transport_ms"))),
            row("mqtt messages/s (sequential)", lambda t: _n((t.get("mqtt") or {}).get("messages_per_s"), 1)),
        ]
    return rows


def training_lines(report: dict[str, Any]) -> list[str]:
    t = report["training"]
    if t is None:
        return ["training: skipped (--no-train)"]
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in t["metrics"].items())
    return [
        f"training (this machine, a child process): {t['rows']} {t['unit']} from {t['records']} records",
        f"  time: train {t['train_s']:.3f} s (fit {t['fit_s']:.3f} s, evaluate {t['evaluate_s']:.3f} s); "
        f"process {t['process_s']:.2f} s with Python start-up and saving",
        f"  CPU: mean {_n(t['cpu_mean_pct'], 1)}%, peak {_n(t['cpu_peak_pct'], 1)}% (100% = one core); "
        f"peak memory: RSS {_n(t['peak_rss_mib'], 1)} MiB",
        f"  energy: {_energy(t['energy'])}" if t["energy"] else f"  {NOT_MEASURED}",
        f"  holdout: {metrics}",
    ]


def header_lines(report: dict[str, Any]) -> list[str]:
    c, m, s = report["config_set"], report["machine"], report["settings"]
    return [
        f"mlrm bench: '{c['name']}' ({c['algorithm']}, {c['task']}) - mlrm {report['mlrm']}, {report['started_at']}",
        f"machine: {m['host']}, {m['cpus']} CPUs ({m['cpu_model'] or 'model unknown'}), {_n(m['memory_mib'])} MiB",
        f"data: {s['data_source']}; batch {s['batch']} instance(s) per request"
        + ("; --quick" if s["quick"] else "")
        + "".join(f"; {k} {v['from']} -> {v['to']}" for k, v in s["overrides"].items()),
    ]


def energy_methods(report: dict[str, Any]) -> list[str]:
    methods = sorted({e["method"] for e in _energies(report)})
    if not report["energy"]["measured"]:
        return [NOT_MEASURED]
    return [f"energy method: {m}; scope: the whole machine mlrm bench runs on" for m in methods]


def _energies(report: dict[str, Any]) -> list[dict[str, Any]]:
    found = [t["energy"] for t in report["targets"] if t["energy"]]
    if report["training"] and report["training"]["energy"]:
        found.append(report["training"]["energy"])
    return found


def table(report: dict[str, Any]) -> str:
    """The report for a terminal."""
    rows = target_rows(report)
    names = [t["name"] for t in report["targets"]]
    first = max(len(label) for label, _ in rows)
    widths = [max(len(n), *(len(cells[i]) for _, cells in rows)) for i, n in enumerate(names)]
    lines = [*header_lines(report), "", *training_lines(report), ""]
    lines.append(" " * first + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths)))
    for label, cells in rows:
        lines.append(label.ljust(first) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    lines += ["", *energy_methods(report)]
    for t in report["targets"]:
        if t["server_note"]:
            lines.append(f"server CPU and memory of {t['name']}: {t['server_note']}")
        if t["latency"]["compute_ms"] is None:
            lines.append(f"compute of {t['name']}: {t['latency']['split']}")
    return "\n".join(lines) + "\n"


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def bar_chart(title: str, unit: str, groups: list[str], series: list[tuple[str, list[float | None]]],
              stacked: bool = False) -> str:  # fmt: skip
    """A vertical bar chart as inline SVG: one cluster per group, one bar (or one stack part) per series."""
    width, height, left, bottom, top = 640, 300, 70, 60, 40
    totals = [sum(v[i] or 0 for _, v in series) if stacked else max((v[i] or 0 for _, v in series), default=0)
              for i in range(len(groups))]  # fmt: skip
    peak = max(totals, default=0) or 1.0
    plot_w, plot_h = width - left - 20, height - top - bottom
    slot = plot_w / max(len(groups), 1)
    bars = 1 if stacked else max(len(series), 1)
    bar_w = slot * 0.7 / bars
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>']  # fmt: skip
    for k in range(5):
        y = top + plot_h - plot_h * k / 4
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_n(peak * k / 4, 2)}</text>')
    out.append(f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
               f'text-anchor="middle">{html.escape(unit)}</text>')  # fmt: skip
    for i, group in enumerate(groups):
        x0 = left + slot * i + slot * 0.15
        base = 0.0
        for j, (name, values) in enumerate(series):
            value = values[i]
            if value is None:
                continue
            h = plot_h * value / peak
            x = x0 if stacked else x0 + j * bar_w
            y = top + plot_h - h - (plot_h * base / peak if stacked else 0)
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{COLOURS[j % 6]}">'
                       f"<title>{html.escape(name)}, {html.escape(group)}: {_n(value, 3)} {html.escape(unit)}</title></rect>")  # fmt: skip
            base += value if stacked else 0
        label = group if len(group) <= 28 else "..." + group[-25:]
        out.append(
            f'<text x="{x0 + slot * 0.35:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{html.escape(label)}</text>'
        )
    x = left
    for j, (name, _) in enumerate(series):
        out.append(f'<rect x="{x}" y="{height - 22}" width="10" height="10" fill="{COLOURS[j % 6]}"/>'
                   f'<text x="{x + 14}" y="{height - 13}">{html.escape(name)}</text>')  # fmt: skip
        x += 30 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out)


def charts(report: dict[str, Any]) -> list[str]:
    targets = report["targets"]
    names = [t["name"] for t in targets]

    def median(spread: dict[str, Any] | None) -> float | None:
        return None if not spread else float(spread["median"])

    found = [
        bar_chart("Predict round trip, median: compute and ingest + transport", "ms", names, [
            ("compute (Server-Timing)", [median(t["latency"]["compute_ms"]) for t in targets]),
            ("ingest + transport", [median(t["latency"]["ingest_transport_ms"]) for t in targets]),
        ], stacked=True),
        bar_chart("Round-trip time to each target (GET /v2/health/live), median", "ms", names,
                  [("rtt", [median(t["rtt_ms"]) for t in targets])]),
    ]  # fmt: skip
    levels = sorted({x["concurrency"] for t in targets for x in t["throughput"]})
    found.append(bar_chart("Throughput by concurrency", "requests/s", [f"concurrency {c}" for c in levels], [
        (t["name"], [next((x["requests_per_s"] for x in t["throughput"] if x["concurrency"] == c), None) for c in levels])
        for t in targets
    ]))  # fmt: skip
    measured = [t for t in targets if t["server"]]
    if measured:
        found.append(bar_chart("Server CPU while measured (100% = one core)", "%", [t["name"] for t in measured], [
            ("mean", [t["server"]["cpu_mean_pct"] for t in measured]),
            ("peak", [t["server"]["cpu_peak_pct"] for t in measured]),
        ]))  # fmt: skip
        found.append(bar_chart("Server peak memory", "MiB", [t["name"] for t in measured], [
            ("PSS", [t["server"]["peak_pss_mib"] for t in measured]),
            ("RSS", [t["server"]["peak_rss_mib"] for t in measured]),
        ]))  # fmt: skip
    spent = [t for t in targets if t["energy"]]
    if spent:
        found.append(bar_chart("Energy of the prediction cycles, this machine", "mWh", [t["name"] for t in spent],
                               [("energy", [t["energy"]["wh"] * 1000 for t in spent])]))  # fmt: skip
    return found


def _html_table(head: list[str], rows: list[Row]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>{''.join(f'<td>{html.escape(c)}</td>' for c in values)}</tr>"
        for label, values in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def write_html(report: dict[str, Any], path: Path) -> None:
    """One page: the header, training, the comparison table, the charts, and the JSON itself."""
    names = [t["name"] for t in report["targets"]]
    notes = [*energy_methods(report)] + [
        f"{t['name']}: {t['server_note']}" for t in report["targets"] if t["server_note"]
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlrm bench: {html.escape(report["config_set"]["name"])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 72em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
tbody th {{ text-align: left; font-weight: normal; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
svg {{ display: block; margin: 1em 0; }}
</style></head><body>
<h1>mlrm bench: {html.escape(report["config_set"]["name"])}</h1>
<p>{"<br>".join(html.escape(line) for line in header_lines(report))}</p>
<h2>Training</h2>
<pre>{html.escape(chr(10).join(training_lines(report)))}</pre>
<h2>Prediction, side by side</h2>
{_html_table(["", *names], target_rows(report))}
<p>{"<br>".join(html.escape(n) for n in notes)}</p>
{"".join(charts(report))}
<h2>The report as JSON</h2>
<pre>{html.escape(json.dumps(report, indent=2))}</pre>
<p>How each figure is measured: docs/bench.md of mlrm.</p>
</body></html>
"""
    path.write_text(page, encoding="utf-8")

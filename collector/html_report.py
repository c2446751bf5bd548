"""The engineer's view of a bundle: one self-contained HTML page, rendered from the
payload's own JSON documents.

:func:`render` takes the documents as parsed JSON (``bundle`` the public header,
``summary``, ``manifest``, ``report``, ``redaction``) and the names of the payload's
files, and returns the page as text: no file I/O here (``collector.bundle_report``
reads and writes), so it is easy to test.  Everything comes from the documents,
so the report of an old bundle shows what that bundle has and says what it lacks.

Every value in the documents came from the examined machine or the bundle, both
hostile: text and attributes go through :func:`html.escape`; the one data block
inside ``<script>`` is JSON with ``< > &`` and U+2028/2029 escaped
(:func:`json_for_script`); links are built only from relative names without
``..`` or empty parts, each part percent-encoded (:func:`safe_link`), so no name
becomes a scheme, an absolute path or a way out of the folder.  The page's
Content-Security-Policy forbids every network request (``default-src 'none'``)
and runs only the inline script and style whose hashes it names.  Every list is
bounded, so the page stays small whatever the bundle holds.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Optional, Sequence
from urllib.parse import quote

from .report import SEVERITIES

MAX_TEXT = 2000             # characters of one table cell or value
MAX_LONG_TEXT = 20000       # the admin's description and steps taken
MAX_FINDINGS = 100
MAX_REASONS = 50
MAX_TOP_ERRORS = 50
MAX_SERIES = 6              # error keys drawn on the timeline
MAX_TIMELINE_BUCKETS = 400  # a hostile summary cannot make the chart huge
MAX_MANIFEST_ROWS = 500     # rows shown in full; the rest are counted
MAX_FILES = 2000            # links; the rest are counted
MAX_LIST = 200              # resources, attachments, redaction rules, failed files...

COLORS = ("#c0392b", "#2471a3", "#d68910", "#7d3c98", "#138d75", "#5d6d7e")

CSS = """
:root{--fg:#1b1f23;--muted:#57606a;--line:#d0d7de;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1200px;padding:16px 24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:15px;margin:12px 0 6px}
.muted{color:var(--muted)}.nowrap{white-space:nowrap}.mono,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
.banner{border:2px solid var(--line);border-radius:8px;padding:14px 18px;background:var(--soft)}
.banner.s-eol,.banner.s-unpatched{border-color:#c0392b}.banner.s-supported{border-color:#1e8449}
.banner.s-unknown{border-color:#b7950b}
.verdict{font-size:20px;font-weight:700;margin:6px 0}
.axes{display:flex;gap:16px;flex-wrap:wrap;margin-top:8px}
.axis{flex:1 1 360px;background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:12px;
text-transform:uppercase;letter-spacing:.03em;color:#fff;background:#5d6d7e}
.b-eol,.b-behind,.b-unpatched,.b-error,.b-failed{background:#c0392b}
.b-supported,.b-current,.b-collected{background:#1e8449}
.b-unknown,.b-warning,.b-skipped,.b-truncated{background:#b7950b}.b-info,.b-absent{background:#5d6d7e}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}td.num{text-align:right;white-space:nowrap}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:4px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.cols{display:flex;gap:24px;flex-wrap:wrap}.cols>div{flex:1 1 420px}
input.filter{width:100%;max-width:480px;padding:5px 8px;border:1px solid var(--line);border-radius:4px;
font:inherit}
.note{background:#fff8e1;border-left:4px solid #b7950b;padding:6px 10px;margin:6px 0}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
.legend span.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
.sw0{background:#c0392b}.sw1{background:#2471a3}.sw2{background:#d68910}.sw3{background:#7d3c98}
.sw4{background:#138d75}.sw5{background:#5d6d7e}
ul.files{columns:2 420px;margin:4px 0;padding-left:18px}
footer{margin:32px 0 8px;color:var(--muted);font-size:12px}
tr[hidden]{display:none}
"""

#: Filters the rows of the table an ``input[data-filter]`` names; nothing else runs.
SCRIPT = """
(function(){
  var inputs=document.querySelectorAll('input[data-filter]');
  Array.prototype.forEach.call(inputs,function(input){
    var table=document.getElementById(input.getAttribute('data-filter'));
    var count=document.getElementById(input.getAttribute('data-count'));
    if(!table){return;}
    function apply(){
      var q=input.value.toLowerCase(),rows=table.tBodies[0].rows,shown=0;
      for(var i=0;i<rows.length;i++){
        var hit=rows[i].textContent.toLowerCase().indexOf(q)>=0;
        rows[i].hidden=!hit;if(hit){shown++;}
      }
      if(count){count.textContent=shown+' of '+rows.length+' rows';}
    }
    input.addEventListener('input',apply);apply();
  });
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


CSP = ("default-src 'none'; img-src data:; style-src " + _csp_hash(CSS) + "; script-src "
       + _csp_hash(SCRIPT) + "; base-uri 'none'; form-action 'none'")


# --------------------------------------------------------------------------- hostile values


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    """Any JSON value as bounded text (None is empty; structures as compact JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)[: limit + 1]
    if len(text) > limit:
        return text[:limit] + f" … ({len(text) - limit}+ more characters)"
    return text


def esc(value: Any, limit: int = MAX_TEXT) -> str:
    """Escaped, bounded text for an element's content or an attribute's value."""
    return html.escape(_text(value, limit), quote=True)


def json_for_script(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``</script>``,
    no ``<!--``, no characters a JavaScript parser reads as a line end."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=False, default=str)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def safe_link(*parts: str) -> Optional[str]:
    """A relative URL for a path inside the extracted folder, or None when the name is
    not one: absolute, empty or ``.``/``..`` parts, control characters, over-long.
    Each part is percent-encoded, so ``:`` cannot start a scheme and ``\\`` cannot
    act as a separator."""
    pieces: list[str] = []
    for part in parts:
        if not isinstance(part, str) or not part or len(part) > 4096 or part.startswith("/"):
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in part):
            return None
        for piece in part.rstrip("/").split("/") if part.endswith("/") else part.split("/"):
            if piece in ("", ".", ".."):
                return None
            pieces.append(quote(piece, safe=""))
    return "/".join(pieces) if pieces else None


def _parse_time(value: Any) -> Optional[datetime]:
    """An ISO date/time as a naive wall-clock time (a zone, if any, is dropped: log
    times and bucket starts are the examined machine's local time)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


# --------------------------------------------------------------------------- small pieces


def _badge(word: Any) -> str:
    text = _text(word, 40) or "unknown"
    cls = "".join(c for c in text.lower() if c.isalnum())[:20]
    return f'<span class="badge b-{cls}">{html.escape(text)}</span>'


def _facts(rows: Iterable[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{esc(value)}</dd>"
                    for label, value in rows if value not in (None, "", [], {}))
    return f'<dl class="facts">{items}</dl>' if items else '<p class="muted">none recorded</p>'


def _items(values: Sequence[Any], limit: int = MAX_LIST, what: str = "more") -> str:
    shown = "".join(f"<li>{esc(v)}</li>" for v in values[:limit])
    rest = f'<li class="muted">… and {len(values) - limit} {what}</li>' if len(values) > limit else ""
    return f"<ul>{shown}{rest}</ul>" if shown else ""


def _missing(what: str) -> str:
    return f'<p class="note">{html.escape(what)}: not in this bundle.</p>'


# --------------------------------------------------------------------------- sections


RELEASE_FROM_STATUS = {"eol": "eol", "supported": "supported", "unpatched": "supported"}
PATCH_FROM_STATUS = {"unpatched": "behind", "supported": "current"}
RELEASE_ADVICE = {
    "eol": "Support policy: this OS release is past its end of life. Ask the admin to upgrade to a "
           "supported release before support proceeds.",
    "supported": "The release is in support.",
    "unknown": "The release's support could not be determined: check the OS against the vendor's "
               "lifecycle before proceeding.",
}
PATCH_ADVICE = {
    "behind": "Support policy: updates are missing. Ask the admin to install them (and restart if "
              "one is pending) before support proceeds.",
    "current": "The OS is up to date.",
    "unknown": "The patch level could not be determined: ask the admin when the machine was last "
               "updated.",
}


def verdict_axes(life: dict) -> tuple[str, str, bool]:
    """(release, patch, derived): the two axes, derived for bundles made before the
    verdict carried them (derived is then True): the release from the days left to
    the EOL date, else from ``status``; the patch level from ``status``."""
    release, patch, status = (_text(life.get(k), 20) for k in ("release", "patch", "status"))
    derived = release not in RELEASE_ADVICE or patch not in PATCH_ADVICE
    if release not in RELEASE_ADVICE:
        days = _int(life.get("days_to_eol"))
        release = RELEASE_FROM_STATUS.get(status, "unknown") if days is None else \
            "supported" if days >= 0 else "eol"
    if patch not in PATCH_ADVICE:
        patch = PATCH_FROM_STATUS.get(status, "unknown")
    return release, patch, derived


def _banner(header: dict, summary: dict) -> str:
    life = _dict(summary.get("lifecycle"))
    bundle_id = header.get("bundle_id") or summary.get("bundle_id")
    status = _text(life.get("status"), 40) or "unknown"
    release, patch, derived = verdict_axes(life)
    os_info = _dict(summary.get("os"))
    patch_facts = _dict(summary.get("patch"))
    days = _int(life.get("days_to_eol"))
    if days is None:
        left = "unknown"
    elif days >= 0:
        left = f"{days} days left"
    else:
        left = f"ended {-days} days ago"
    extended = _dict(life.get("extended_support"))
    release_reasons = _list(life.get("release_reasons")) if not derived else []
    patch_reasons = _list(life.get("patch_reasons")) if not derived else []
    out = [f'<section class="banner s-{html.escape(status.lower()[:20])}" id="banner">',
           f'<h1>Bundle <span class="mono" id="bundle-id">{esc(bundle_id)}</span></h1>',
           f'<div class="muted">Case <b id="case-id">{esc(header.get("case_id") or summary.get("case_id") or "-")}'
           f'</b> · created <span id="created">{esc(header.get("created") or summary.get("created"))}</span>'
           f' · {esc(os_info.get("hostname") or "")} · jcdiag '
           f'{esc(_dict(header.get("tool")).get("version") or "?")}</div>',
           f'<div class="verdict">Verdict: {_badge(status)} '
           f'<span>{esc(life.get("label") or os_info.get("name") or "")}</span></div>',
           '<div class="axes">',
           f'<div class="axis" id="axis-release"><h3>Release {_badge(release)}</h3>',
           _facts([("End of life", life.get("eol_date") or "unknown"), ("Days left", left),
                   ("As of", life.get("as_of")), ("Extended support",
                    f"{extended.get('name') or 'available'} until {extended.get('until') or '?'} "
                    "(not assumed active)" if extended.get("available") is True else None)]),
           f"<p>{html.escape(RELEASE_ADVICE[release])}</p>", _items(release_reasons, MAX_REASONS), "</div>",
           f'<div class="axis" id="axis-patch"><h3>Patch level {_badge(patch)}</h3>',
           _facts([("Last update", patch_facts.get("last_update") or "unknown"),
                   ("Newest known", life.get("latest_known")),
                   ("Security updates waiting", patch_facts.get("pending_security_updates")),
                   ("Restart pending", patch_facts.get("pending_reboot"))]),
           f"<p>{html.escape(PATCH_ADVICE[patch])}</p>", _items(patch_reasons, MAX_REASONS), "</div>",
           "</div>"]
    reasons = _list(life.get("reasons"))
    if reasons:
        out.append(f"<h3>What to do{' (both axes)' if derived else ''}</h3>{_items(reasons, MAX_REASONS)}")
    if life.get("data_date"):
        out.append(f'<p class="muted">Lifecycle data of {esc(life.get("data_date"))}.</p>')
    if not life:
        out.append(_missing("The lifecycle verdict"))
    out.append("</section>")
    return "".join(out)


def _findings(summary: dict) -> str:
    found = [f for f in _list(summary.get("findings")) if isinstance(f, dict)]
    if "findings" not in summary:
        return "<h2>Findings</h2>" + _missing("Health findings")
    if not found:
        return '<h2>Findings</h2><p>No health findings.</p>'
    rows = "".join(
        f'<tr><td>{_badge(f.get("severity"))}</td><td><b>{esc(f.get("title"))}</b>'
        f'<div class="muted mono">{esc(f.get("id"))}</div></td><td><pre>{esc(f.get("evidence"))}</pre></td>'
        f'<td>{esc(f.get("remediation"))}</td></tr>' for f in found[:MAX_FINDINGS])
    more = f'<p class="muted">… and {len(found) - MAX_FINDINGS} more in summary.json</p>' \
        if len(found) > MAX_FINDINGS else ""
    return (f'<h2>Findings ({len(found)})</h2><table id="findings"><thead><tr><th>Severity</th>'
            f'<th>Finding</th><th>Evidence</th><th>What to do</th></tr></thead><tbody>{rows}</tbody></table>'
            + more)


def _system(summary: dict) -> str:
    agent, os_info = _dict(summary.get("agent")), _dict(summary.get("os"))
    procs = [p for p in _list(agent.get("processes")) if isinstance(p, dict)]
    proc_text = ", ".join(f"{_text(p.get('name'), 100)} (pid {_text(p.get('pid'), 20)})"
                          for p in procs[:20]) or "not running"
    errors = _dict(summary.get("fact_errors"))
    agent_html = _facts([
        ("Installed", agent.get("installed") if agent.get("installed") is not None else "unknown"),
        ("Version", agent.get("version")), ("Service", agent.get("service_name")),
        ("Service state", agent.get("service_state") or "unknown"),
        ("Starts at boot", agent.get("service_enabled")), ("Processes", proc_text),
        ("Notes", "; ".join(_text(n, 300) for n in _list(agent.get("notes"))[:20]))])
    os_html = _facts([(label, os_info.get(key)) for label, key in (
        ("OS", "name"), ("Version", "version"), ("Build", "build"), ("Edition", "edition"),
        ("Kernel", "kernel"), ("Architecture", "arch"), ("Host name", "hostname"))]
        + [("Platform", summary.get("platform")), ("Root", summary.get("root"))])
    errors_html = "".join(f'<p class="note">{esc(k)} facts failed: {esc(v)}</p>'
                          for k, v in list(errors.items())[:10])
    return (f'<h2>Agent and system</h2><div class="cols"><div><h3>JumpCloud agent</h3>{agent_html}</div>'
            f'<div><h3>Operating system</h3>{os_html}</div></div>{errors_html}')


def _issue_report(report: Optional[dict], files: set[str], base: str) -> str:
    if report is None:
        return "<h2>The admin's issue report</h2>" + _missing("report.json")
    severity = _int(report.get("severity"))
    meaning = SEVERITIES.get(severity) or _text(report.get("severity_meaning"), 300)
    attachments = _list(report.get("attachments"))
    att_items = []
    for name in attachments[:MAX_LIST]:
        href = safe_link(*(p for p in (base, "attachments", name) if p)) \
            if isinstance(name, str) and f"attachments/{name}" in files else None
        att_items.append(f'<li><a href="{html.escape(href)}">{esc(name)}</a></li>' if href
                         else f"<li>{esc(name)}</li>")
    empty = not any(report.get(k) for k in ("description", "steps_taken", "noticed_at", "severity",
                                            "resources", "attachments"))
    return ("<h2>The admin's issue report</h2>"
            + ('<p class="muted">The admin gave no issue report.</p>' if empty else "")
            + '<dl class="facts" id="issue-report">'
            + f"<dt>Severity</dt><dd>{esc(severity if severity else report.get('severity') or 'not given')}"
            + (f" — {esc(meaning)}" if meaning else "") + "</dd>"
            + f"<dt>Noticed at</dt><dd>{esc(report.get('noticed_at') or 'not given')}</dd>"
            + f"<dt>Description</dt><dd><pre>{esc(report.get('description') or '', MAX_LONG_TEXT)}</pre></dd>"
            + f"<dt>Steps taken</dt><dd><pre>{esc(report.get('steps_taken') or '', MAX_LONG_TEXT)}</pre></dd>"
            + f"<dt>Resources</dt><dd>{_items(_list(report.get('resources'))) or 'none given'}</dd>"
            + f"<dt>Attachments</dt><dd>{'<ul>' + ''.join(att_items) + '</ul>' if att_items else 'none'}"
            + (f" … and {len(attachments) - MAX_LIST} more" if len(attachments) > MAX_LIST else "")
            + "</dd></dl>")


def _width_words(hours: int) -> str:
    if hours == 1:
        return "per hour"
    if hours % 24 == 0:
        return "per day" if hours == 24 else f"per {hours // 24} days"
    return f"per {hours} hours"


def timeline_points(summary: dict) -> Optional[dict]:
    """The timeline as drawn: bucket width, window, and per top key its non-zero
    buckets (bucket index -> count), or None when the bundle has no timeline."""
    stats = _dict(summary.get("log_stats"))
    tl = _dict(stats.get("timeline"))
    hours = _int(tl.get("bucket_hours"))
    if not tl or hours is None or not 1 <= hours <= 24 * 4096:
        return None
    start, end = _parse_time(tl.get("start")), _parse_time(tl.get("end"))
    out: dict[str, Any] = {"hours": hours, "start": start, "end": end, "buckets": 0, "series": []}
    if start is None or end is None or end <= start:
        return out
    step = timedelta(hours=hours)
    buckets = min(MAX_TIMELINE_BUCKETS, -(-(end - start) // step))
    try:
        start + buckets * step                   # a window at the end of the calendar: not drawn
    except OverflowError:
        return out
    out["buckets"] = buckets
    series = _dict(tl.get("series"))
    keys = [e.get("message") for e in _list(stats.get("top_errors")) if isinstance(e, dict)]
    keys += [k for k in series if k not in keys]
    for key in keys:
        if len(out["series"]) >= MAX_SERIES:
            break
        counts = _dict(series.get(key)) if isinstance(key, str) else {}
        points: dict[int, int] = {}
        for bucket, count in counts.items():
            when, count = _parse_time(bucket), _int(count)
            if when is None or count is None or count <= 0:
                continue
            index = (when - start) // step
            if 0 <= index < buckets:
                points[index] = points.get(index, 0) + count
        if points:
            out["series"].append({"key": key, "points": points})
    return out


def _timeline(summary: dict, report: Optional[dict]) -> str:
    head = "<h2>Error timeline</h2>"
    tl = timeline_points(summary)
    if tl is None:
        return head + _missing("The error timeline (errors per hour per error key; bundles made by "
                               "jcdiag before the HTML report do not carry it)")
    if not tl["series"]:
        return head + ('<p id="timeline-empty">No timestamped error lines in the agent log (or none '
                       "this page can place).</p>")
    width, height, left, right, top, bottom = 1000, 280, 48, 40, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    n, start, step = tl["buckets"], tl["start"], timedelta(hours=tl["hours"])
    peak = max(c for s in tl["series"] for c in s["points"].values())

    def x(i: float) -> float:
        return left + (i + 0.5) * plot_w / n

    def y(c: int) -> float:
        return top + plot_h - c * plot_h / peak

    svg = [f'<svg id="timeline" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'xmlns="http://www.w3.org/2000/svg" aria-label="errors {_width_words(tl["hours"])}">',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#d0d7de"/>']
    for frac in (0, 0.5, 1):
        value = round(peak * frac)
        svg.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="#eaeef2"/><text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                   f"{value}</text>")
    ticks = sorted({round(i * (n - 1) / 5) for i in range(6)}) if n > 1 else [0]
    for i in ticks:
        label = (start + i * step).strftime("%m-%d %H:%M" if tl["hours"] < 24 else "%Y-%m-%d")
        svg.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 5}" '
                   f'stroke="#57606a"/><text x="{x(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
                   f"{html.escape(label)}</text>")
    for number, s in enumerate(tl["series"]):
        color = COLORS[number % len(COLORS)]
        path = " ".join(f"{x(i):.1f},{y(s['points'].get(i, 0)):.1f}" for i in range(n))
        svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}"/>')
        for i, count in sorted(s["points"].items()):
            bucket = (start + i * step).isoformat(timespec="minutes")
            svg.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(count):.1f}" r="3" fill="{color}" '
                       f'data-series="{number}" data-bucket="{bucket}" data-count="{count}">'
                       f"<title>{esc(s['key'], 300)}\n{bucket}: {count}</title></circle>")
    noticed_raw = _dict(report).get("noticed_at")
    noticed = _parse_time(noticed_raw)
    note = ""
    if noticed is not None:
        index = (noticed - start) / step
        if 0 <= index <= n:
            nx = left + index * plot_w / n
            svg.append(f'<line id="noticed" x1="{nx:.1f}" x2="{nx:.1f}" y1="{top}" y2="{top + plot_h}" '
                       f'stroke="#000" stroke-dasharray="5,4" stroke-width="1.5"/>'
                       f'<text x="{nx + 4:.1f}" y="{top + 12}" fill="#000">noticed</text>')
        else:
            note = (f'<p class="muted" id="noticed-outside">The admin noticed the issue at {esc(noticed_raw)}, '
                    "outside the window of the collected logs.</p>")
    svg.append("</svg>")
    legend = "".join(
        f'<div><span class="sw sw{i % len(COLORS)}"></span><span class="mono">{esc(s["key"], 300)}</span> '
        f'<span class="muted">({sum(s["points"].values())})</span></div>' for i, s in enumerate(tl["series"]))
    end = start + n * step
    return (head + f'<p class="muted">Errors {_width_words(tl["hours"])}, {html.escape(start.isoformat(" ", "minutes"))}'
            f" to {html.escape(end.isoformat(' ', 'minutes'))} (the examined machine's local time); the top "
            f"{len(tl['series'])} error keys"
            + (", the admin's “noticed at” dashed" if noticed is not None and not note else "")
            + ".</p>" + "".join(svg) + f'<div class="legend">{legend}</div>' + note)


def _top_errors(summary: dict) -> str:
    head = "<h2>Top error lines</h2>"
    stats = _dict(summary.get("log_stats"))
    if "top_errors" not in stats:
        return head + _missing("The table of top error lines (the findings above list the five most "
                               "frequent)")
    errors = [e for e in _list(stats.get("top_errors")) if isinstance(e, dict)][:MAX_TOP_ERRORS]
    if not errors:
        return head + "<p>No error lines in the agent log.</p>"
    rows = "".join(
        f'<tr><td class="num">{esc(e.get("count"))}</td><td class="mono nowrap">{esc(e.get("first_seen") or "?")}'
        f'</td><td class="mono nowrap">{esc(e.get("last_seen") or "?")}</td><td class="mono">{esc(e.get("message"))}</td>'
        f'<td><pre>{esc(e.get("example"))}</pre></td></tr>' for e in errors)
    totals = (f'{esc(stats.get("error_lines"))} error lines among {esc(stats.get("lines"))} lines of '
              "jcagent.log" + (f"; {esc(stats.get('evicted'))} rare messages were dropped from the count"
                               if stats.get("evicted") else ""))
    return (head + f'<p class="muted">{totals}.</p>'
            '<p><input class="filter" type="search" placeholder="Search the error lines" '
            'data-filter="top-errors" data-count="top-errors-count" aria-label="Search the error lines"> '
            '<span class="muted" id="top-errors-count"></span></p>'
            '<table id="top-errors"><thead><tr><th>Count</th><th>First seen</th><th>Last seen</th>'
            f"<th>Message (variable parts as placeholders)</th><th>Example</th></tr></thead><tbody>{rows}"
            "</tbody></table>")


STATUS_ORDER = {"failed": 0, "skipped": 1, "absent": 2, "collected": 3}


def _row_order(artifact: dict) -> float:
    """Failed, skipped and absent entries first, then truncated ones, then the rest."""
    status = artifact.get("status")
    if status == "collected" and artifact.get("truncated") is True:
        return 2.5
    return STATUS_ORDER.get(status, 0) if isinstance(status, str) else 0


def _file_cell(name: Any, files: set[str], base: str) -> str:
    href = safe_link(*(p for p in (base, name) if p)) if isinstance(name, str) and name in files else None
    return f'<a href="{html.escape(href)}">{esc(name)}</a>' if href else esc(name)


def _manifest(manifest: Optional[dict], summary: dict, files: set[str], base: str) -> str:
    head = "<h2>Manifest: what was collected, and what was not</h2>"
    if manifest is None:
        return head + _missing("manifest.json")
    arts = [a for a in _list(manifest.get("artifacts")) if isinstance(a, dict)]
    counts: dict[str, int] = {}
    for a in arts:
        key = _text(a.get("status"), 20) or "?"
        counts[key] = counts.get(key, 0) + 1
    truncated = sum(1 for a in arts if a.get("truncated") is True)
    ordered = sorted(arts, key=_row_order)
    shown, rest = ordered[:MAX_MANIFEST_ROWS], ordered[MAX_MANIFEST_ROWS:]
    rows = []
    for a in shown:
        status = _badge(a.get("status")) + (" " + _badge("truncated") if a.get("truncated") is True else "")
        why = [_text(a.get("reason"))] + [_text(t, 300) for t in _list(a.get("truncation"))[:5]] \
            + [_text(e, 300) for e in _list(a.get("errors"))[:5]]
        red = _dict(a.get("redactions"))
        rows.append(f'<tr data-status="{esc(a.get("status"), 20)}"><td>{status}</td>'
                    f'<td class="mono">{_file_cell(a.get("name"), files, base)}</td>'
                    f'<td>{esc(a.get("collector"), 200)}</td><td class="mono">{esc(a.get("source"), 500)}</td>'
                    f'<td class="num">{esc(a.get("size"))}</td>'
                    f'<td>{esc("; ".join(w for w in why if w))}</td>'
                    f'<td>{esc(", ".join(f"{_text(k, 80)} {_text(v, 20)}" for k, v in list(red.items())[:10]))}'
                    "</td></tr>")
    rest_note = ""
    if rest:
        rest_bytes = sum(_int(a.get("size")) or 0 for a in rest)
        rest_note = (f'<p class="muted" id="manifest-rest">… and {len(rest)} more entries ({rest_bytes} bytes), '
                     "all collected in full: manifest.json lists every one.</p>")
    limits = _dict(manifest.get("limits"))
    summary_line = ", ".join(f"{v} {html.escape(k)}" for k, v in sorted(counts.items()))
    return (head + f'<p id="manifest-counts">{summary_line or "no entries"}; {truncated} truncated. '
            + f'<span class="muted">Limits: per file {esc(limits.get("max_file_size") or "-")} bytes, '
            f'whole bundle {esc(limits.get("max_bundle_size") or "-")} bytes, since '
            f'{esc(limits.get("since") or "the start of the logs")}; '
            + ("live system" if manifest.get("live") is True else f'root {esc(manifest.get("root"))}')
            + ".</span></p>"
            '<p><input class="filter" type="search" placeholder="Search the manifest" data-filter="manifest" '
            'data-count="manifest-count" aria-label="Search the manifest"> <span class="muted" '
            'id="manifest-count"></span></p>'
            '<table id="manifest"><thead><tr><th>Status</th><th>File in the bundle</th><th>Collector</th>'
            '<th>Source</th><th>Bytes</th><th>Why / truncation</th><th>Redactions</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>" + rest_note)


def _redaction(redaction: Optional[dict], summary: dict) -> str:
    head = "<h2>Redaction</h2>"
    if redaction is None:
        totals = _dict(summary.get("redaction"))
        if not totals:
            return head + _missing("redaction.json")
        redaction = {"totals": totals}
    totals = _dict(redaction.get("totals"))
    described = {_text(r.get("id"), 200): r for r in _list(redaction.get("rules")) if isinstance(r, dict)}
    rule_ids = list(totals) + [k for k in described if k not in totals]
    rows = "".join(
        f'<tr><td class="mono">{esc(rule, 200)}</td><td>{esc(_dict(described.get(rule)).get("description"))}</td>'
        f'<td class="num">{esc(totals.get(rule, 0))}</td></tr>' for rule in rule_ids[:MAX_LIST])
    more = f'<p class="muted">… and {len(rule_ids) - MAX_LIST} more rules</p>' if len(rule_ids) > MAX_LIST else ""
    failed = _list(redaction.get("failed"))
    binary = _list(redaction.get("binary_skipped"))
    pseudo = _dict(redaction.get("pseudonymization"))
    extra = ""
    if failed:
        extra += "<h3>Dropped: could not be scrubbed (fail closed)</h3>" + _items(failed)
    if binary:
        extra += "<h3>Binary files, not scrubbed</h3>" + _items(binary)
    if pseudo:
        extra += "<h3>Pseudonyms</h3>" + _facts((_text(k, 80), v) for k, v in list(pseudo.items())[:20])
    return (head + f'<p class="muted">Rule set {esc(redaction.get("ruleset_version") or "?")}; '
            f'{esc(redaction.get("total_redactions", sum(v for v in totals.values() if _int(v))))} '
            "redactions in all.</p>"
            '<table id="redaction"><thead><tr><th>Rule</th><th>What it removes</th><th>Hits</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>{more}{extra}")


def _files(files: Sequence[str], total: int, base: str) -> str:
    head = "<h2>Files</h2>"
    where = (f"in the folder <code>{esc(base)}</code> beside this page (<code>jcdiag open BUNDLE --to "
             "FOLDER</code> extracts them)" if base else "in the folder of this page")
    items = []
    for name in files[:MAX_FILES]:
        href = safe_link(*(p for p in (base, name) if p))
        items.append(f'<li><a href="{html.escape(href)}">{esc(name)}</a></li>' if href
                     else f'<li>{esc(name)} <span class="muted">(not linked: not a plain relative name)'
                          "</span></li>")
    more = total - min(len(files), MAX_FILES)
    return (head + f"<p class=\"muted\">{total} files, linked {where}.</p>"
            f'<ul class="files" id="files">{"".join(items)}</ul>'
            + (f'<p class="muted">… and {more} more files.</p>' if more > 0 else ""))


# --------------------------------------------------------------------------- the page


def render(documents: Mapping[str, Any], files: Sequence[str] = (), *, file_base: str = "",
           total_files: Optional[int] = None, problems: Sequence[str] = ()) -> str:
    """The report page.

    ``documents``: ``bundle`` (the public header), ``summary``, ``manifest``,
    ``report``, ``redaction``, each the parsed JSON or None when absent.
    ``files``: names inside the extracted folder (``logs/jcagent.log``) to link;
    ``file_base``: that folder relative to the page ("" when the page is inside
    it).  ``total_files``: how many there are when ``files`` was cut short.
    ``problems``: lines about documents that could not be read.
    """
    header = _dict(documents.get("bundle"))
    summary = _dict(documents.get("summary"))
    report = documents.get("report") if isinstance(documents.get("report"), dict) else None
    manifest = documents.get("manifest") if isinstance(documents.get("manifest"), dict) else None
    redaction = documents.get("redaction") if isinstance(documents.get("redaction"), dict) else None
    base = file_base.strip("/") if isinstance(file_base, str) else ""
    if base and safe_link(base) is None:
        base = ""
    names = [f for f in files if isinstance(f, str)]
    name_set = set(names)
    bundle_id = header.get("bundle_id") or summary.get("bundle_id")
    data = {"bundle_id": _text(bundle_id, 100),
            "timeline": _timeline_data(summary)}
    notes = "".join(f'<p class="note">{esc(p)}</p>' for p in list(problems)[:20])
    body = [
        _banner(header, summary), notes,
        _findings(summary), _system(summary), _issue_report(report, name_set, base),
        _timeline(summary, report), _top_errors(summary),
        _manifest(manifest, summary, name_set, base), _redaction(redaction, summary),
        _files(names, total_files if total_files is not None else len(names), base),
        f'<footer>jcdiag report of bundle {esc(bundle_id)}. Everything on this page comes from the '
        "bundle's own documents (summary.json, manifest.json, report.json, redaction.json); text from the "
        "examined machine is shown as text, never run.</footer>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(CSP)}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>jcdiag report {esc(bundle_id, 100)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body)
            + f'\n<script type="application/json" id="jcdiag-data">{json_for_script(data)}</script>'
            f"<script>{SCRIPT}</script></body></html>\n")


def _timeline_data(summary: dict) -> Optional[dict]:
    """The drawn timeline as plain data (embedded for whoever wants the numbers)."""
    tl = timeline_points(summary)
    if tl is None:
        return None
    start, step = tl["start"], timedelta(hours=tl["hours"])
    return {"bucket_hours": tl["hours"],
            "series": [{"key": _text(s["key"], 300),
                        "counts": {(start + i * step).isoformat(timespec="minutes"): c
                                   for i, c in sorted(s["points"].items())}} for s in tl["series"]]}

"""Escaping and the frame every page shares.

Everything shown comes from records, which hold user text (job names, file
names, logs, outputs): it goes through ``text`` (control characters made
visible, then HTML-escaped) and nowhere else. Pages carry a Content Security
Policy that allows only their own inline style and script, by hash, so markup
that slipped through could not run. No page loads anything from the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Sequence

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

CSS = """\
:root{color-scheme:light;--fg:#1d2126;--muted:#5b6570;--line:#d6dbe0;--bg2:#f4f6f8;
--ok:#17663a;--bad:#a4161a;--warn:#8a5a00;--del:#ffebe9;--add:#e6ffec}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0 auto;max-width:1200px;padding:1rem 1.5rem 3rem}
a{color:#0b57c2}
h1{font-size:1.5rem;margin:.5rem 0;word-break:break-all}
h2{font-size:1.15rem;margin:1.75rem 0 .5rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1rem 0 .25rem}
nav{font-size:.9rem;margin-bottom:.5rem}
nav a{margin-right:1rem}
table{border-collapse:collapse;margin:.25rem 0;font-size:.9rem}
th,td{border:1px solid var(--line);padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:var(--bg2)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:var(--bg2);padding:.5rem;overflow:auto;max-height:40rem;margin:.25rem 0;
white-space:pre}
details{margin:.25rem 0}
summary{cursor:pointer}
.muted{color:var(--muted)}
.status{font-weight:600;padding:0 .35rem;border-radius:.2rem}
.status-succeeded,.same{color:var(--ok)}
.status-failed,.status-error,.status-abandoned,.differs{color:var(--bad)}
.status-other,.status-interrupted{color:var(--warn)}
.filters{margin:.5rem 0;display:flex;gap:1rem;align-items:center}
.filters label{font-size:.9rem}
.kv th{width:12rem}
.sbs{width:100%;table-layout:fixed}
.sbs td{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem;white-space:pre-wrap;
word-break:break-all;padding:0 .4rem}
.sbs td.ln{width:3.5rem;color:var(--muted);text-align:right}
.sbs td.del{background:var(--del)}
.sbs td.add{background:var(--add)}
.sbs tr.hunk td{background:var(--bg2);color:var(--muted)}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
svg.series{vertical-align:middle;background:var(--bg2)}
img.plot{max-width:100%;border:1px solid var(--line)}
"""

LIST_SCRIPT = """\
(function(){
var form=document.getElementById('filters');form.hidden=false;
var job=document.getElementById('f-job'),st=document.getElementById('f-status');
var rows=document.querySelectorAll('#runs tbody tr'),count=document.getElementById('shown');
var q=new URLSearchParams(window.location.search);
function pick(sel,v){for(var i=0;i<sel.options.length;i++){
if(sel.options[i].value===v){sel.selectedIndex=i;}}}
if(q.has('job')){pick(job,q.get('job'));}
if(q.has('status')){pick(st,q.get('status'));}
function apply(){var n=0;rows.forEach(function(r){
var ok=(job.value==='*'||r.dataset.job===job.value)&&(st.value==='*'||r.dataset.status===st.value);
r.hidden=!ok;if(ok){n++;}});count.textContent=String(n);}
job.addEventListener('change',apply);st.addEventListener('change',apply);apply();
})();
"""


def visible(value: object) -> str:
    """User text with control characters shown as ``\\xNN`` (tabs and newlines kept;
    ``\\r\\n`` becomes a newline). Not yet escaped: see ``text``."""
    raw = str(value).replace("\r\n", "\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", raw)


def text(value: object) -> str:
    """User text for an HTML text node or a quoted attribute: ``visible``, then every
    markup character escaped."""
    return html.escape(visible(value), quote=True)


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def policy(style: str, script: str) -> str:
    """The Content Security Policy of a page: its own inline style and script only."""
    scripts = _hash(script) if script else "'none'"
    return (f"default-src 'none'; style-src {_hash(style)}; script-src {scripts}; "
            "img-src 'self'; base-uri 'none'; form-action 'none'")


def page(title: str, body: str, *, extra_css: str = "", script: str = "") -> str:
    """A whole HTML document: title and body (already HTML), inline style and script."""
    style = CSS + extra_css
    tail = f"<script>{script}</script>\n" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy(style, script)}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"generator\" content=\"composer site\">\n"
        f"<title>{text(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"{body}{tail}</body>\n</html>\n"
    )


def link(href: str, label: str) -> str:
    """A link; ``href`` is composer's own relative path (run ids, fixed names)."""
    return f"<a href=\"{text(href)}\">{text(label)}</a>"


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table: ``head`` is plain text, each cell of ``rows`` is HTML already."""
    attr = f" class=\"{cls}\"" if cls else ""
    header = "".join(f"<th>{text(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n"
                   for row in rows)
    return f"<table{attr}>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of labels (plain text) and values (HTML already)."""
    body = "".join(f"<tr><th>{text(k)}</th><td>{v}</td></tr>\n" for k, v in rows)
    return f"<table class=\"kv\">\n<tbody>\n{body}</tbody>\n</table>\n"


KNOWN_STATUSES = ("succeeded", "failed", "error", "abandoned", "interrupted")


def status(value: str) -> str:
    """A run status with its colour class (only composer's own names become classes)."""
    cls = value if value in KNOWN_STATUSES else "other"
    return f"<span class=\"status status-{cls}\">{text(value)}</span>"


def pre(body: str) -> str:
    """Preformatted user text, escaped."""
    return f"<pre>{text(body)}</pre>\n"


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.2f}{unit}"

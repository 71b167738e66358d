"""The one page template: the same sections become a self-contained HTML page (inline CSS and SVG, no scripts,
no external URLs, every name escaped) and a Markdown file."""
from __future__ import annotations

from html import escape

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#16324f;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:12px 32px 48px}nav{margin:8px 0 16px}nav a{margin-right:14px;color:#16324f}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:14px 20px;margin:16px 0;overflow-x:auto}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #e6e6e6;padding:4px 10px;text-align:right;white-space:nowrap}
th{background:#f1f4f7}td.l,th.l{text-align:left}tr.best td{font-weight:600;background:#f4fbf4}
.figs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.muted{color:#666;font-size:12px}
details{margin:10px 0;border-top:1px solid #eee;padding-top:6px}summary{cursor:pointer;font-weight:600}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
"""


def render(title: str, subtitle: str, sections: list, footer: str) -> tuple[str, str]:
    """(HTML page, Markdown text) of ``sections`` (:class:`~transferkit.report.sections.Section`)."""
    nav = "".join(f"<a href='#{escape(s.id)}'>{escape(s.title)}</a>" for s in sections)
    body = "".join(f"<section id='{escape(s.id)}'><h2>{escape(s.title)}</h2>{''.join(h for h, _ in s.blocks)}"
                   f"</section>" for s in sections)
    html = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
            f"<main><nav>{nav}</nav>{body}<p class=muted>{escape(footer)}</p></main></body></html>")
    md = [f"# {title}", "", subtitle, ""]
    for s in sections:
        md += [f"## {s.title}", ""] + [part for _, m in s.blocks for part in (m, "")]
    md.append(footer)
    return html, "\n".join(md) + "\n"

"""The run report: ``OUTPUT/report.html``, written after the pipeline by ``--report``.

One self-contained HTML file (inline CSS, the histogram as inline SVG, thumbnails as
base64 ``data:`` URIs; nothing is loaded from the network), built from the written
manifests and the run summary:

- counts per route and throughput;
- the score histogram of the decided images, text and non-text stacked, with the threshold;
- failures grouped by reason (stage and error type), with examples: the failed records'
  URIs, which are already redacted;
- a gallery of decided images, at most ``per_route`` (48) per route, closest to the
  threshold first (the borderline decisions a reviewer wants to see), each text image
  with its 5x5 region probabilities drawn over it as a heatmap.

The manifests are streamed line by line and only the ``per_route`` records closest to the
threshold are kept, so memory does not grow with the run; only the gallery's images are
read again (in parallel, each one shrunk to a small JPEG). Shown URIs are redacted.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import heapq
import html
import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Mapping, Optional

from PIL import Image, ImageOps

from model.preprocessing import PreprocessConfig, open_image, to_rgb
from pipeline.io import ReadConfig, read_bytes
from pipeline.records import FAILED, NON_TEXT, TEXT
from pipeline.sinks import write_atomically
from pipeline.uris import filesystem, join, redact_uri

log = logging.getLogger("textfilter.report")

REPORT_NAME = "report.html"
PER_ROUTE = 48  # thumbnails per decided route
THUMB_EDGE = 192  # px, long edge of a thumbnail
THUMB_QUALITY = 72
HIST_BINS = 20
MAX_BYTES = 20 * 1024 * 1024  # the report stays under this, whatever the run
EXAMPLES_PER_REASON = 3
READ_THREADS = 8
THUMB_READ = ReadConfig(max_bytes=50 * 1024 * 1024, retries=1, backoff_s=0.2, timeout_s=30.0)
THUMB_PREPROCESS = PreprocessConfig()  # its max_pixels guards thumbnails against bombs too

COLORS = {TEXT: "#d9480f", NON_TEXT: "#1c7ed6", FAILED: "#868e96"}


@dataclasses.dataclass
class ReportData:
    """What the report shows, gathered in one pass over the manifests."""

    threshold: float
    counts: dict = dataclasses.field(default_factory=lambda: {TEXT: 0, NON_TEXT: 0, FAILED: 0})
    histogram: dict = dataclasses.field(default_factory=lambda: {TEXT: [0] * HIST_BINS, NON_TEXT: [0] * HIST_BINS})
    gallery: dict = dataclasses.field(default_factory=lambda: {TEXT: [], NON_TEXT: []})  # records, closest first
    failures: dict = dataclasses.field(default_factory=dict)  # (stage, error_type) -> {"count", "examples"}


def manifest_records(output: str, route: str, storage_options: Optional[Mapping] = None) -> Iterator[dict]:
    """The records of one route's manifest shards, streamed line by line."""
    fs, prefix = filesystem(join(output, route), storage_options)
    for shard in sorted(fs.glob(prefix + "-*-of-*.jsonl")):
        with fs.open(shard, "rb") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def histogram_bin(score: float) -> int:
    return min(HIST_BINS - 1, max(0, int(score * HIST_BINS)))


def collect(output: str, threshold: float, storage_options: Optional[Mapping] = None,
            per_route: int = PER_ROUTE) -> ReportData:
    """One streaming pass over the three manifests."""
    data = ReportData(threshold=threshold)
    for route in (TEXT, NON_TEXT):
        heap: list = []  # (-distance, -order, record): the per_route records closest to the threshold
        for order, record in enumerate(manifest_records(output, route, storage_options)):
            score = float(record.get("score", 0.0))
            data.counts[route] += 1
            data.histogram[route][histogram_bin(score)] += 1
            if per_route <= 0:
                continue
            kept = {"uri": record.get("uri", ""), "score": score, "regions_5x5": record.get("regions_5x5")}
            item = (-abs(score - threshold), -order, kept)
            if len(heap) < per_route:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
        data.gallery[route] = [r for _, _, r in sorted(heap, key=lambda t: (-t[0], -t[1]))]
    for record in manifest_records(output, FAILED, storage_options):
        data.counts[FAILED] += 1
        key = (str(record.get("stage", "?")), str(record.get("error_type", "Error")))
        group = data.failures.setdefault(key, {"count": 0, "examples": []})
        group["count"] += 1
        if len(group["examples"]) < EXAMPLES_PER_REASON:
            group["examples"].append((str(record.get("uri", "")), str(record.get("error", ""))))
    return data


def thumbnail(uri: str, storage_options: Optional[Mapping] = None, edge: int = THUMB_EDGE) -> tuple:
    """(data: URI of a small JPEG, (width, height)) of the image at ``uri``, upright."""
    raw = read_bytes(uri, dataclasses.replace(THUMB_READ, storage_options=dict(storage_options or {})))
    img = open_image(raw, THUMB_PREPROCESS)
    try:
        if img.format == "JPEG":
            img.draft("RGB", (edge * 2, edge * 2))  # decode at a reduced scale
        img = to_rgb(ImageOps.exif_transpose(img))
        img.thumbnail((edge, edge), Image.Resampling.BILINEAR, reducing_gap=2.0)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=THUMB_QUALITY, optimize=True)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), img.size
    finally:
        img.close()


def thumbnails(records: list, storage_options: Optional[Mapping] = None) -> list:
    """Thumbnail of each record, or the reason it could not be made, in parallel."""

    def one(record):
        try:
            return thumbnail(record["uri"], storage_options)
        except Exception as e:  # noqa: BLE001 - moved or unreadable since the run: shown as a gap
            return None, f"{type(e).__name__}"

    if not records:
        return []
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(records))) as pool:
        return list(pool.map(one, records))


# ----------------------------------------------------------------------------- rendering

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#212529;
background:#f8f9fa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 10px} .muted{color:#6c757d}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:12px 16px;min-width:150px}
.card .v{font-size:26px;font-weight:600} .card .pct{font-size:14px}
.card .k{color:#6c757d;font-size:12px;text-transform:uppercase}
.bar{display:flex;height:14px;border-radius:7px;overflow:hidden;margin-top:14px;background:#e9ecef}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dee2e6}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #dee2e6;vertical-align:top}
th{background:#f1f3f5;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.uri{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:8px}
.thumb{position:relative;line-height:0;background:#e9ecef;border-radius:4px;overflow:hidden}
.thumb img{width:100%;height:auto;display:block}
.heat{position:absolute;inset:0;display:grid;grid-template-columns:repeat(5,1fr);grid-template-rows:repeat(5,1fr)}
.heat span{border:1px solid rgba(255,255,255,.25)} .heat span.hit{outline:2px solid #fff;outline-offset:-3px}
.gap{height:120px;display:flex;align-items:center;justify-content:center;color:#868e96;line-height:1.2}
figcaption{margin-top:6px;font-size:12px} figcaption b{font-size:13px}
.legend{display:inline-block;width:120px;height:10px;vertical-align:middle;border-radius:3px;
background:linear-gradient(90deg,rgba(255,40,0,0),rgba(255,40,0,.75))}
svg text{font:11px system-ui,sans-serif;fill:#495057}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def histogram_svg(data: ReportData, score_rule: Optional[str] = None, width: int = 1100, height: int = 260) -> str:
    """The score histogram as inline SVG: text and non-text stacked per bin; the axis names
    the rule that made the image scores."""
    left, right, top, bottom = 50, 10, 26, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [data.histogram[TEXT][i] + data.histogram[NON_TEXT][i] for i in range(HIST_BINS)]
    peak = max(totals) or 1
    bin_w = plot_w / HIST_BINS
    parts = [f'<svg role="img" aria-label="score histogram" width="100%" viewBox="0 0 {width} {height}" '
             f'preserveAspectRatio="xMidYMid meet">']
    for frac in (0.0, 0.5, 1.0) if peak % 2 == 0 or peak > 10 else (0.0, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dee2e6"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(peak * frac):,}</text>')
    for i in range(HIST_BINS):
        x = left + i * bin_w
        y = top + plot_h
        for route in (NON_TEXT, TEXT):
            n = data.histogram[route][i]
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bin_w - 2:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[route]}"><title>{route} {i / HIST_BINS:.2f}-{(i + 1) / HIST_BINS:.2f}: '
                         f'{n:,}</title></rect>')
        if totals[i]:
            parts.append(f'<text x="{x + bin_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{totals[i]:,}</text>')
    for i in range(0, HIST_BINS + 1, 2):
        x = left + i * bin_w
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{i / HIST_BINS:.1f}</text>')
    tx = left + plot_w * min(max(data.threshold, 0.0), 1.0)
    parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 14}" y2="{top + plot_h}" stroke="#212529" '
                 f'stroke-width="2" stroke-dasharray="5 3"/>')
    anchor = "end" if data.threshold > 0.85 else "start"
    label_x = tx - 4 if anchor == "end" else tx + 4
    parts.append(f'<text x="{label_x:.1f}" y="{top - 15}" text-anchor="{anchor}" style="font-weight:600">'
                 f'threshold {data.threshold:.4g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">image score '
                 f'(score rule {_e(score_rule or "unknown")})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _heat_overlay(regions, threshold: float) -> str:
    if not regions:
        return ""
    cells = []
    for r, row in enumerate(regions):
        for c, p in enumerate(row):
            p = float(p)
            hit = ' class="hit"' if p >= threshold else ""
            cells.append(f'<span{hit} style="background:rgba(255,40,0,{0.75 * p:.3f})" '
                         f'title="region {r + 1},{c + 1}: {p:.3f}"></span>')
    return '<div class="heat">' + "".join(cells) + "</div>"


def gallery_html(route: str, records: list, thumbs: list, threshold: float, total: int) -> str:
    title = "Text" if route == TEXT else "Non-text"
    if not records:
        return f"<h2>{title} images</h2><p class='muted'>none</p>"
    parts = [f"<h2>{title} images closest to the threshold</h2>",
             f"<p class='muted'>{len(records)} of {total:,}, borderline first."]
    if route == TEXT:
        parts.append(" Over each image, its 5x5 region probabilities: <span class='legend'></span> 0 to 1; "
                     "outlined cells are at or above the threshold.")
    parts.append("</p><div class='gallery'>")
    for record, (src, info) in zip(records, thumbs):
        score = record["score"]
        shown_uri = redact_uri(record["uri"])
        if src:
            w, h = info
            overlay = _heat_overlay(record.get("regions_5x5"), threshold) if route == TEXT else ""
            image = (f'<div class="thumb"><img src="{src}" width="{w}" height="{h}" alt="{_e(shown_uri)}">'
                     f"{overlay}</div>")
        else:
            image = f'<div class="thumb gap">image not readable now<br>({_e(info)})</div>'
        parts.append(f"<figure>{image}<figcaption><b>{score:.3f}</b> "
                     f"<span class='muted'>({score - threshold:+.3f} from threshold)</span>"
                     f"<div class='uri'>{_e(shown_uri)}</div></figcaption></figure>")
    parts.append("</div>")
    return "".join(parts)


def failures_html(data: ReportData) -> str:
    if not data.failures:
        return "<h2>Failures</h2><p class='muted'>none</p>"
    rows = []
    for (stage, error_type), group in sorted(data.failures.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
        examples = "".join(
            f"<div class='uri'>{_e(uri)}</div><div class='muted'>{_e(error)}</div>" for uri, error in group["examples"]
        )
        rows.append(f"<tr><td>{_e(stage)}</td><td>{_e(error_type)}</td><td class='n'>{group['count']:,}</td>"
                    f"<td>{examples}</td></tr>")
    return ("<h2>Failures by reason</h2><table><thead><tr><th>stage</th><th>error type</th><th>count</th>"
            "<th>examples (URIs redacted)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render(data: ReportData, summary: Mapping, thumbs: Mapping[str, list]) -> str:
    counts = data.counts
    total = sum(counts.values())
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cards = [("images", _fmt(total))]
    for route in (TEXT, NON_TEXT, FAILED):
        share = f" <span class='muted pct'>{100 * counts[route] / total:.1f}%</span>" if total else ""
        cards.append((route.replace("_", "-"), _fmt(counts[route]) + share))
    cards += [("images / second", _fmt(summary.get("images_per_second"))),
              ("wall time", f"{_fmt(summary.get('seconds'))} s"),
              ("threshold", f"{data.threshold:.4g}"
               + (f" <span class='muted'>({_e(summary['score_rule'])})</span>" if summary.get("score_rule") else ""))]
    bar = "".join(
        f'<div title="{route}: {counts[route]:,}" style="width:{100 * counts[route] / total:.3f}%;'
        f'background:{COLORS[route]}"></div>' for route in (TEXT, NON_TEXT, FAILED) if total and counts[route]
    )
    legend = " ".join(f"<span style='color:{COLORS[r]}'>&#9632;</span> {r}" for r in (TEXT, NON_TEXT, FAILED))
    outputs = summary.get("outputs") or {}
    out_rows = "".join(f"<tr><td>{_e(k)}</td><td class='uri'>{_e(v)}</td></tr>" for k, v in outputs.items())
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>textfilter report: {total:,} images</title><style>{CSS}</style></head><body><main>",
        "<h1>textfilter run report</h1>",
        f"<div class='muted'>generated {generated}; counts from the written manifests</div>",
        "<div class='cards'>",
        "".join(f"<div class='card'><div class='k'>{_e(k)}</div><div class='v'>{v}</div></div>" for k, v in cards),
        "</div>",
        f"<div class='bar'>{bar}</div><div class='muted' style='margin-top:4px'>{legend}</div>",
        "<h2>Score histogram</h2>",
        f"<div class='card'>{histogram_svg(data, summary.get('score_rule'))}<div class='muted'><span style='color:{COLORS[TEXT]}'>&#9632;</span>"
        f" text <span style='color:{COLORS[NON_TEXT]}'>&#9632;</span> non_text, stacked; bins of {1 / HIST_BINS:g}"
        "</div></div>",
        failures_html(data),
        gallery_html(TEXT, data.gallery[TEXT], thumbs.get(TEXT, []), data.threshold, counts[TEXT]),
        gallery_html(NON_TEXT, data.gallery[NON_TEXT], thumbs.get(NON_TEXT, []), data.threshold, counts[NON_TEXT]),
        f"<h2>Outputs</h2><table><tbody>{out_rows}</tbody></table>" if out_rows else "",
        "</main></body></html>",
    ])


def build_report(output: str, summary: Mapping, storage_options: Optional[Mapping] = None,
                 per_route: int = PER_ROUTE, max_bytes: int = MAX_BYTES) -> str:
    """The report's HTML text (see the module docstring)."""
    threshold = float(summary.get("threshold", 0.5))
    data = collect(output, threshold, storage_options, per_route)
    thumbs = {route: thumbnails(data.gallery[route], storage_options) for route in (TEXT, NON_TEXT)}
    page = render(data, summary, thumbs)
    while len(page.encode("utf-8")) > max_bytes and (data.gallery[TEXT] or data.gallery[NON_TEXT]):
        for route in (TEXT, NON_TEXT):  # unusually large thumbnails: keep the closest half
            keep = len(data.gallery[route]) // 2
            data.gallery[route], thumbs[route] = data.gallery[route][:keep], thumbs[route][:keep]
        page = render(data, summary, thumbs)
    return page


def write_report(output: str, summary: Mapping, storage_options: Optional[Mapping] = None) -> str:
    """Write ``OUTPUT/report.html`` from the manifests under ``output`` and the run
    ``summary``; returns its URI."""
    uri = join(output, REPORT_NAME)
    page = build_report(output, summary, storage_options)
    write_atomically(uri, page.encode("utf-8"), storage_options)
    return uri

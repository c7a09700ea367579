"""Charts as inline SVG strings, drawn in Python: no JavaScript, no network, no dependency.

Every function returns one ``<svg>`` element (a ``markupsafe.Markup``, safe to drop into a
jinja2 template with autoescape on, or to show in a notebook with ``IPython.display.HTML``).
Text is escaped here; hovering a bar, cell or marker shows its exact numbers (SVG ``<title>``).
Why SVG rather than a JS library: components/reports/README.md.
"""
from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from markupsafe import Markup, escape

REFERENCE = "#7b8fb2"
CURRENT = "#e8772e"
SERIES = ("#2f6db5", "#e8772e", "#4a9e5c", "#9b59b6", "#c0392b")
SEVERITY = {"critical": "#c0392b", "warning": "#e0a100", "info": "#7b8fb2"}
FONT = 'font-family="system-ui, sans-serif"'


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.3g}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _distinct_texts(edges: Sequence[float]) -> List[str]:
    """The edges as short numbers, with as many significant digits as it takes to tell neighbours
    apart (coordinates: 41.88 and 41.91 would both read 41.9 at three digits)."""
    texts = [_fmt(e) for e in edges]
    digits = 4
    while len(set(texts)) < len(set(edges)) and digits <= 12:
        texts = [_fmt(e) if abs(e) >= 1e5 or abs(e) < 1e-3 else f"{e:.{digits}g}" for e in edges]
        digits += 1
    return texts


def _svg(width: float, height: float, body: List[str], label: str) -> Markup:
    return Markup(
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="100%" style="max-width:{width:.0f}px" role="img" aria-label="{escape(label)}" {FONT} '
        f'font-size="11">' + "".join(body) + "</svg>")


def bin_labels(details: Mapping) -> List[str]:
    """Labels of a drift report's bins: categories as they are, numeric bins as ranges.

    Numeric details carry the interior edges of the reference-quantile bins, so there is one
    more count than edges: (-inf, e0], (e0, e1], ..., (e_last, inf).
    """
    if "bins" in details:
        return [str(b) for b in details["bins"]]
    edges = list(details.get("bin_edges") or [])
    n = len(details.get("reference_counts") or [])
    if not edges:
        return ["all"] * n
    text = _distinct_texts(edges)
    labels = [f"≤ {text[0]}"]
    labels += [f"{a} – {b}" for a, b in zip(text, text[1:])]
    labels.append(f"> {text[-1]}")
    return labels[:n] if n else labels


def _shares(counts: Sequence[float]) -> List[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def overlay_bars(labels: Sequence[str], reference: Sequence[float], current: Sequence[float], *,
                 title: str = "", names=("reference", "this span"), width: int = 560) -> Markup:
    """Reference and current shares per bin, side by side (counts are normalised to shares)."""
    ref, cur = _shares(reference), _shares(current)
    n = max(len(labels), 1)
    top = max(ref + cur + [1e-9])
    ymax = math.ceil(top / 0.04) * 0.04 if top > 0.08 else top * 1.1
    left, right, head, foot = 44, 10, 40, 64
    height = 240
    plot_w, plot_h = width - left - right, height - head - foot
    step = plot_w / n
    bar = step * 0.38
    body = [f'<text x="{left}" y="14" font-weight="600" font-size="12">{escape(title)}</text>',
            f'<rect x="{left}" y="21" width="10" height="10" fill="{REFERENCE}"/>'
            f'<text x="{left + 14}" y="30">{escape(names[0])}</text>'
            f'<rect x="{left + 90}" y="21" width="10" height="10" fill="{CURRENT}"/>'
            f'<text x="{left + 104}" y="30">{escape(names[1])}</text>']
    for k in range(5):
        v = ymax * k / 4
        y = head + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>'
                    f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7580">{v:.0%}</text>')
    rotate = n > 6 or max((len(s) for s in labels), default=0) * 6 > step
    for i, lab in enumerate(labels):
        x0 = left + i * step + step * 0.12
        for j, (vals, color, name) in enumerate(((ref, REFERENCE, names[0]), (cur, CURRENT, names[1]))):
            v = vals[i] if i < len(vals) else 0.0
            h = plot_h * v / ymax if ymax else 0
            raw = (reference if j == 0 else current)[i] if i < len((reference if j == 0 else current)) else 0
            body.append(f'<rect x="{x0 + j * bar:.1f}" y="{head + plot_h - h:.1f}" width="{bar:.1f}" '
                        f'height="{h:.1f}" fill="{color}"><title>{escape(lab)} · {escape(name)}: '
                        f'{v:.1%} ({_fmt(raw)})</title></rect>')
        short = lab if len(lab) <= 22 else lab[:21] + "…"
        cx = left + i * step + step / 2
        if rotate:
            body.append(f'<text transform="translate({cx:.1f},{head + plot_h + 10}) rotate(30)" '
                        f'fill="#394049">{escape(short)}<title>{escape(lab)}</title></text>')
        else:
            body.append(f'<text x="{cx:.1f}" y="{head + plot_h + 14}" text-anchor="middle" '
                        f'fill="#394049">{escape(short)}</text>')
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{head + plot_h}" y2="{head + plot_h}" stroke="#9aa3ad"/>')
    return _svg(width, height, body, title or "distribution")


def feature_distribution(name: str, feature: Mapping) -> Optional[Markup]:
    """Overlay of one drift-report feature's reference and current bins (None without bins)."""
    d = feature.get("details") or {}
    if not d.get("reference_counts") or not d.get("current_counts"):
        return None
    title = f"{name} ({feature.get('kind', '')}): share of non-missing values per bin"
    return overlay_bars(bin_labels(d), d["reference_counts"], d["current_counts"], title=title)


def prediction_distribution(monitor: Mapping) -> Optional[Markup]:
    """The serving model's predictions on the reference vs this span: the probability (binary)
    or value (regression) in reference-quantile bins, the predicted classes' shares (multi-class)."""
    p = (monitor or {}).get("prediction") or {}
    if p.get("kind") == "class":
        ref, cur = p.get("class_share_reference") or {}, p.get("class_share_current") or {}
        names = list(ref)
        if not names:
            return None
        return overlay_bars(names, [ref[n] for n in names], [cur.get(n, 0.0) for n in names],
                            title="predicted class")
    if not p.get("reference_counts") or not p.get("current_counts"):
        return None
    what = "predicted value" if p.get("kind") == "value" else "predicted probability"
    return overlay_bars(bin_labels(p), p["reference_counts"], p["current_counts"],
                        title=f"{what} (reference-quantile bins)")


HEAT_MAX = 0.25   # PSI rule of thumb: < 0.1 small, 0.1-0.25 moderate, > 0.25 major shift


def _heat(score: float) -> str:
    """White -> orange -> dark red on a sqrt scale of |score| / HEAT_MAX, capped at 1."""
    t = max(0.0, min(1.0, math.sqrt(abs(score) / HEAT_MAX)))
    stops = [(1.0, (255, 255, 255)), (0.5, (253, 190, 133)), (0.0, (179, 0, 0))]
    t = 1 - t
    for (a, ca), (b, cb) in zip(stops[1:], stops[:-1]):
        if a <= t <= b:
            u = (t - a) / (b - a)
            c = [round(x + (y - x) * u) for x, y in zip(ca, cb)]
            return f"rgb({c[0]},{c[1]},{c[2]})"
    return "rgb(255,255,255)"


def heatmap(rows: Sequence[str], cols: Sequence[str], cells: Mapping[tuple, Mapping], *,
            title: str = "", col_groups: Optional[Sequence[str]] = None, links: Optional[Sequence[str]] = None,
            width: Optional[int] = None) -> Markup:
    """Rows x columns of drift scores. ``cells[(row, col)]`` = {"score", "threshold", "drifted",
    "method", "p_value_adjusted"}; colour = score relative to its threshold, a dot = drifted.
    ``col_groups`` (e.g. the model version compared per span) draws a line where it changes.
    """
    label_w = max([len(r) for r in rows] + [8]) * 6.6 + 12
    cell_w, cell_h, head = 54, 22, 46
    width = width or int(max(label_w + cell_w * len(cols) + 20, 640))
    height = head + cell_h * len(rows) + 56
    body = [f'<text x="0" y="14" font-weight="600" font-size="12">{escape(title)}</text>']
    for j, c in enumerate(cols):
        x = label_w + j * cell_w + cell_w / 2
        text = f'<text x="{x:.1f}" y="{head - 8}" text-anchor="middle" fill="#394049">{escape(c)}</text>'
        if links and links[j]:
            text = f'<a href="{escape(links[j])}">{text}</a>'
        body.append(text)
        if col_groups is not None:
            body.append(f'<text x="{x:.1f}" y="{head - 22}" text-anchor="middle" fill="#6b7580" '
                        f'font-size="10">{escape(col_groups[j])}</text>')
    for i, r in enumerate(rows):
        y = head + i * cell_h
        body.append(f'<text x="{label_w - 8:.1f}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">{escape(r)}</text>')
        for j, c in enumerate(cols):
            x = label_w + j * cell_w
            cell = cells.get((r, c))
            if not cell or cell.get("score") is None:
                body.append(f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                            f'fill="#f3f4f6"><title>{escape(r)} · {escape(c)}: not compared</title></rect>')
                continue
            thr = cell.get("threshold") or 0
            ratio = abs(cell["score"]) / HEAT_MAX
            tip = (f"{r} · {c}: {cell.get('method', 'score')} = {_fmt(cell['score'])}"
                   f" (threshold {_fmt(thr)}, adjusted p {_fmt(cell.get('p_value_adjusted') or 0)})"
                   f" → {'DRIFT' if cell.get('drifted') else 'ok'}")
            body.append(f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                        f'fill="{_heat(cell["score"])}" stroke="{"#5c0000" if cell.get("drifted") else "none"}" '
                        f'stroke-width="1.5"><title>{escape(tip)}</title></rect>')
            color = "#fff" if ratio > 0.45 else "#1d232a"
            mark = "● " if cell.get("drifted") else ""
            body.append(f'<text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="middle" '
                        f'fill="{color}" font-size="10" pointer-events="none">{mark}{cell["score"]:.2g}</text>')
    if col_groups is not None:
        for j in range(1, len(cols)):
            if col_groups[j] != col_groups[j - 1]:
                x = label_w + j * cell_w
                body.append(f'<line x1="{x}" x2="{x}" y1="{head - 34}" y2="{head + cell_h * len(rows)}" '
                            f'stroke="#1d232a" stroke-dasharray="3,2"/>')
    y = head + cell_h * len(rows) + 18
    body.append(f'<text x="0" y="{y}" fill="#6b7580">cell = the feature\'s drift score (PSI for distributions; '
                f'colour saturates at {HEAT_MAX});</text>')
    body.append(f'<text x="0" y="{y + 16}" fill="#6b7580">● = drift: significant and above its threshold</text>')
    return _svg(width, height, body, title or "heat map")


def _slanted(xs: Sequence[str], step: float) -> bool:
    """Whether the x labels (spans) are too long for their slot and must be slanted."""
    return bool(xs) and max(len(str(x)) for x in xs) * 6.2 > step - 4


def _x_label(x: float, y: float, text: str, slanted: bool) -> str:
    if slanted:
        return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" fill="#394049" '
                f'transform="rotate(-35 {x:.1f} {y:.1f})">{escape(text)}</text>')
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="#394049">{escape(text)}</text>'


def _nice_ticks(lo: float, hi: float, percent: bool = False, target: int = 4):
    """Round axis ticks covering [lo, hi] (a step of 1, 2, 2.5 or 5 x 10^k, about ``target``
    intervals) and how to print them: 88%, 89.5%; 0.02, 0.04; 20, 22.5."""
    span = (hi - lo) or abs(hi) or 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999), 10 * power)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    if last == first:
        last += 1
    ticks = [k * step for k in range(first, last + 1)]
    scale = 100 if percent else 1
    decimals = max(0, -math.floor(math.log10(step * scale) + 1e-9))
    if round(step * scale / 10 ** -decimals, 6) % 1:      # 2.5 x 10^k: one digit more
        decimals += 1

    def text(v: float) -> str:
        if not percent and (abs(v) >= 1e6 or decimals > 4):
            return _fmt(v)
        return f"{v * scale:.{decimals}f}" + ("%" if percent else "")
    return ticks, text


Band = Tuple[Sequence[Optional[float]], Sequence[Optional[float]]]


def _band_segments(lows: Sequence[Optional[float]], highs: Sequence[Optional[float]]) -> List[List[int]]:
    """Runs of consecutive indices where both ends of the interval are known."""
    runs: List[List[int]] = []
    last = None
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        if lo is None or hi is None:
            last = None
            continue
        if last is None or i != last + 1:
            runs.append([])
        runs[-1].append(i)
        last = i
    return runs


def line_chart(xs: Sequence[str], series: Mapping[str, Sequence[Optional[float]]], *, title: str = "",
               percent: bool = False, width: int = 640, height: int = 220,
               dashed: Sequence[str] = (), bands: Optional[Mapping[str, Band]] = None,
               band_label: str = "95 % interval", x_title: str = "") -> Markup:
    """One line per series over categorical x (spans); gaps where a value is None.

    ``bands`` = {series name: (lows, highs)} shades an interval around that series in its colour
    (a gap where either end is None; a lone span's interval is a short bar); the legend names it
    ``band_label``, and hovering a point of the series shows its interval too.
    """
    bands = {name: band for name, band in (bands or {}).items() if name in series}
    left, right, head, foot = 48, 165, 24, 28
    slanted = _slanted(xs, (width - left - right) / max(len(xs), 1))
    if slanted:
        foot, height = foot + 22, height + 22
    if x_title:
        foot, height = foot + 14, height + 14
    plot_w, plot_h = width - left - right, height - head - foot
    vals = [v for s in series.values() for v in s if v is not None]
    vals += [v for lows, highs in bands.values() for lo, hi in zip(lows, highs)
             if lo is not None and hi is not None for v in (lo, hi)]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    pad = (hi - lo) * 0.15 or 0.02
    # scores, errors and rates are never negative: no axis below 0 for them
    lo, hi = (lo - pad if lo < 0 else max(lo - pad, 0.0)), hi + pad
    ticks, tick_text = _nice_ticks(lo, hi, percent)
    lo, hi = ticks[0], ticks[-1]
    n = max(len(xs), 1)

    def px(i):
        return left + (plot_w * (i + 0.5) / n)

    def py(v):
        return head + plot_h - plot_h * (v - lo) / (hi - lo)

    def shown(v):
        return f"{v:.1%}" if percent else _fmt(v)

    body = [f'<text x="0" y="14" font-weight="600" font-size="12">{escape(title)}</text>']
    for v in ticks:
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e3e6ea"/>'
                    f'<text x="{left - 4}" y="{py(v) + 4:.1f}" text-anchor="end" fill="#6b7580">'
                    f'{tick_text(v)}</text>')
    for i, x in enumerate(xs):
        body.append(_x_label(px(i), head + plot_h + 16, x, slanted))
    if x_title:
        body.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" '
                    f'fill="#6b7580">{escape(x_title)}</text>')
    colors = {name: SERIES[k % len(SERIES)] for k, name in enumerate(series)}
    for name, (lows, highs) in bands.items():      # under the lines
        half = min(plot_w / n * 0.18, 8)
        for run in _band_segments(lows, highs):
            if len(run) == 1:
                i = run[0]
                xs_band = [px(i) - half, px(i) + half]
                points = [(xs_band[0], highs[i]), (xs_band[1], highs[i]), (xs_band[1], lows[i]), (xs_band[0], lows[i])]
            else:
                points = [(px(i), highs[i]) for i in run] + [(px(i), lows[i]) for i in reversed(run)]
            body.append(f'<polygon class="band" points="{" ".join(f"{x:.1f},{py(v):.1f}" for x, v in points)}" '
                        f'fill="{colors[name]}" fill-opacity="0.18" stroke="none">'
                        f'<title>{escape(name)}: {escape(band_label)}</title></polygon>')
    legend = []
    for name, ys in series.items():
        color = colors[name]
        dash = ' stroke-dasharray="5,3"' if name in dashed else ""
        path, pen = [], "M"
        for i, v in enumerate(ys):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{px(i):.1f},{py(v):.1f}")
            pen = "L"
        if path:
            body.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        lows, highs = bands.get(name, ((), ()))
        for i, v in enumerate(ys):
            if v is not None:
                tip = f"{name} · {xs[i]}: {shown(v)}"
                if i < len(lows) and i < len(highs) and lows[i] is not None and highs[i] is not None:
                    tip += f" ({band_label} {shown(lows[i])} – {shown(highs[i])})"
                body.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3.5" fill="{color}">'
                            f'<title>{escape(tip)}</title></circle>')
        legend.append((name, color, dash, False))
        if name in bands and any(_band_segments(*bands[name])):
            legend.append((band_label, color, "", True))
    x1 = left + plot_w + 12
    for k, (text, color, dash, band) in enumerate(legend):
        ly = head + 10 + 16 * k
        mark = (f'<rect x="{x1}" y="{ly - 5}" width="18" height="10" fill="{color}" fill-opacity="0.18"/>' if band else
                f'<line x1="{x1}" x2="{x1 + 18}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        body.append(f'{mark}<text x="{x1 + 22}" y="{ly + 4}">{escape(text)}</text>')
    return _svg(width, height, body, title or "line chart")


def alert_timeline(xs: Sequence[str], rules: Sequence[str], alerts: Sequence[Mapping], *, title: str = "",
                   width: Optional[int] = None) -> Markup:
    """Alerts as markers: x = span, y = rule, colour = severity. ``alerts`` items carry
    "x" (one of xs), "rule", "severity" and "title"."""
    label_w = max([len(r) for r in rules] + [10]) * 6.6 + 12
    col_w, row_h, head = 46, 20, 30
    width = width or int(label_w + col_w * len(xs) + 150)
    slanted = _slanted(xs, col_w)
    height = head + row_h * max(len(rules), 1) + 26 + (22 if slanted else 0)
    body = [f'<text x="0" y="14" font-weight="600" font-size="12">{escape(title)}</text>']
    for j, x in enumerate(xs):
        cx = label_w + j * col_w + col_w / 2
        body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{head}" y2="{head + row_h * len(rules)}" stroke="#eef0f3"/>'
                    + _x_label(cx, head + row_h * len(rules) + 16, x, slanted))
    for i, r in enumerate(rules):
        y = head + i * row_h + row_h / 2
        body.append(f'<text x="{label_w - 8:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(r)}</text>'
                    f'<line x1="{label_w}" x2="{label_w + col_w * len(xs)}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>')
    by_cell: Dict[tuple, List[Mapping]] = {}
    for a in alerts:
        if a.get("x") in xs and a.get("rule") in rules:
            by_cell.setdefault((a["x"], a["rule"]), []).append(a)
    for (x, rule), items in by_cell.items():
        cx = label_w + list(xs).index(x) * col_w + col_w / 2
        cy = head + list(rules).index(rule) * row_h + row_h / 2
        worst = "critical" if any(a.get("severity") == "critical" for a in items) else items[0].get("severity", "info")
        tip = "\n".join(f"[{a.get('severity')}] {a.get('title', '')}" for a in items)
        shape = (f'<rect x="{cx - 6:.1f}" y="{cy - 6:.1f}" width="12" height="12" transform="rotate(45 {cx:.1f} {cy:.1f})"'
                 if worst == "critical" else f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6"')
        body.append(f'{shape} fill="{SEVERITY.get(worst, "#7b8fb2")}"><title>{escape(tip)}</title>'
                    f'{"</rect>" if worst == "critical" else "</circle>"}')
    lx = label_w + col_w * len(xs) + 16
    for k, (sev, color) in enumerate(SEVERITY.items()):
        body.append(f'<circle cx="{lx}" cy="{head + 6 + 16 * k}" r="5" fill="{color}"/>'
                    f'<text x="{lx + 10}" y="{head + 10 + 16 * k}">{sev}</text>')
    return _svg(width, height, body, title or "alerts")

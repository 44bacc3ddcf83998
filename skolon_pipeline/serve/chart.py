"""The Översikt's trend of the last 30 nights as a small server-side SVG (no script, no library on the page)."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 28
SERIES = (("users", "chart-users"), ("held_back", "chart-held"))


def _ticks(top: int) -> list[int]:
    if top <= 0:
        return [0]
    step = max(1, round(top / 4))
    return list(range(0, top + 1, step))


def trend_svg(points: list[dict], labels: dict[str, str], title: str) -> Markup:
    """`points`: [{as_of, users, held_back}] oldest first; `labels`: series key → legend text."""
    if not points:
        return Markup("")
    top = max(max(p["users"], p["held_back"]) for p in points) or 1
    top = int(top * 1.1) + 1
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(points)

    def x(i: int) -> float:
        return LEFT + (inner_w * i / (n - 1) if n > 1 else inner_w / 2)

    def y(v: int) -> float:
        return TOP + inner_h * (1 - v / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for t in _ticks(top):
        parts.append(f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                     f'<text class="chart-axis" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t}</text>')
    for i in sorted({0, n - 1}):
        parts.append(f'<text class="chart-axis" x="{x(i):.1f}" y="{HEIGHT - 8}" '
                     f'text-anchor="{"start" if i == 0 and n > 1 else "end"}">{escape(str(points[i]["as_of"]))}</text>')
    for key, css in SERIES:
        coords = " ".join(f"{x(i):.1f},{y(p[key]):.1f}" for i, p in enumerate(points))
        parts.append(f'<polyline class="{css}" points="{coords}"/>')
        for i, p in enumerate(points):
            parts.append(f'<circle class="{css}" cx="{x(i):.1f}" cy="{y(p[key]):.1f}" r="2.5">'
                         f'<title>{escape(str(p["as_of"]))}: {p[key]} {escape(labels[key])}</title></circle>')
    legend_x = LEFT + 8
    for k, (key, css) in enumerate(SERIES):
        lx = legend_x + k * 170
        parts.append(f'<rect class="{css}-key" x="{lx}" y="6" width="10" height="10"/>'
                     f'<text class="chart-legend" x="{lx + 14}" y="15">{escape(labels[key])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

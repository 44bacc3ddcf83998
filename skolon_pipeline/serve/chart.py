"""The Översikt's trend of the last 30 nights as a small server-side SVG (no script, no library on the page)."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 28
SERIES = (("users", "chart-users"), ("held_back", "chart-held"))


def _nice_top(value: int) -> tuple[int, int]:
    """An axis top at or above `value` and its step: 1, 2 or 5 times a power of ten, four or five steps."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if value <= m * step * 5:
                s = m * step
                return -(-value // s) * s or s, s
        step *= 10


def trend_svg(points: list[dict], labels: dict[str, str], title: str) -> Markup:
    """`points`: [{as_of, users, held_back}] oldest first; `labels`: series key → legend text."""
    if not points:
        return Markup("")
    top, step = _nice_top(max(max(p["users"], p["held_back"]) for p in points) or 1)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(points)

    def x(i: int) -> float:
        return LEFT + (inner_w * i / (n - 1) if n > 1 else inner_w / 2)

    def y(v: int) -> float:
        return TOP + inner_h * (1 - v / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for t in range(0, top + 1, step):
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
            f'<text class="chart-axis" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t}</text>'
        )
    for i in sorted({0, n - 1}):
        parts.append(
            f'<text class="chart-axis" x="{x(i):.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="{"start" if i == 0 and n > 1 else "end"}">{escape(str(points[i]["as_of"]))}</text>'
        )
    for key, css in SERIES:
        coords = " ".join(f"{x(i):.1f},{y(p[key]):.1f}" for i, p in enumerate(points))
        parts.append(f'<polyline class="{css}" points="{coords}"/>')
        for i, p in enumerate(points):
            parts.append(
                f'<circle class="{css}" cx="{x(i):.1f}" cy="{y(p[key]):.1f}" r="2.5">'
                f"<title>{escape(str(p['as_of']))}: {p[key]} {escape(labels[key])}</title></circle>"
            )
    legend_x = LEFT + 8
    for k, (key, css) in enumerate(SERIES):
        lx = legend_x + k * 170
        parts.append(
            f'<rect class="{css}-key" x="{lx}" y="6" width="10" height="10"/>'
            f'<text class="chart-legend" x="{lx + 14}" y="15">{escape(labels[key])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))

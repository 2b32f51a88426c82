import { svg } from "./dom.js";

/** One line of a plot: points as [time in ms, value], oldest first. */
export interface Series {
  points: [number, number][];
  /** CSS class of the line (its colour comes from the stylesheet). */
  className: string;
  /** Draw as steps (a count that holds until it changes) rather than straight segments. */
  steps?: boolean;
}

const WIDTH = 600;
const HEIGHT = 170;
/** Room for the y labels on the left and the x labels below. */
const PAD = { left: 44, right: 10, top: 10, bottom: 22 };
const Y_TICKS = 4;

/**
 * Draws `series` over the last `spanMs` up to `now` into `target`, replacing what was there: a
 * y axis from 0 to a round number above the largest value, a grid, and the time axis in minutes.
 * Drawn with SVG elements and presentation attributes only, which the page's CSP allows.
 */
export function drawPlot(target: SVGSVGElement, series: Series[], opts: { now: number; spanMs: number; unit?: string }): void {
  const { now, spanMs } = opts;
  const max = niceCeiling(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
  const x = (t: number) => PAD.left + ((t - (now - spanMs)) / spanMs) * (WIDTH - PAD.left - PAD.right);
  const y = (v: number) => HEIGHT - PAD.bottom - (v / max) * (HEIGHT - PAD.top - PAD.bottom);
  target.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  target.replaceChildren();
  for (let i = 0; i <= Y_TICKS; i++) {
    const v = (max / Y_TICKS) * i;
    target.append(
      svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, `${Number(v.toPrecision(3))}${i === Y_TICKS && opts.unit ? opts.unit : ""}`),
    );
  }
  const minutes = Math.round(spanMs / 60_000);
  for (const m of [minutes, minutes / 2, 0]) {
    target.append(svg("text", { class: "tick", x: x(now - m * 60_000), y: HEIGHT - 6, "text-anchor": m === minutes ? "start" : m === 0 ? "end" : "middle" }, m === 0 ? "now" : `−${m} min`));
  }
  for (const s of series) {
    const visible = s.points.filter(([t]) => t >= now - spanMs);
    if (visible.length === 0) continue;
    const at = ([t, v]: [number, number]) => [x(t).toFixed(1), y(v).toFixed(1)] as const;
    const [x0, y0] = at(visible[0]!);
    let d = `M${x0},${y0}`;
    for (const point of visible.slice(1)) {
      const [px, py] = at(point);
      d += s.steps ? `H${px}V${py}` : `L${px},${py}`;
    }
    target.append(svg("path", { class: `line ${s.className}`, d, fill: "none" }));
    const [lt, lv] = visible[visible.length - 1]!;
    target.append(svg("circle", { class: `dot ${s.className}`, cx: x(lt), cy: y(lv), r: 3 }));
  }
}

/** 1, 2 or 5 times a power of ten, at least `v` (and at least 1, so an idle server still has an axis). */
export function niceCeiling(v: number): number {
  if (v <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * power >= v) return m * power;
  return 10 * power;
}

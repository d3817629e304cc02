// A small SVG line chart (no library): one line per series, time on x, a labelled y scale, and a table
// of the same numbers for screen readers. Colours come from the stylesheet (.line-0 ...).
import { formatNumber, h, lang, t } from "./app.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 480;
const H = 200;
const PAD = { left: 44, right: 10, top: 10, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Counters (sign-ups, tokens) show their total over the period; gauges their latest value.
const COUNTERS = new Set(["signups", "llm.tokens", "llm.requests"]);
function legendValue(name, points) {
  if (!points.length) return "–";
  const value = COUNTERS.has(name) ? points.reduce((sum, [, v]) => sum + v, 0) : points.at(-1)[1];
  return formatNumber(value, Number.isInteger(value) ? 0 : 1);
}

export function drawChart(figure, series, rangeMs) {
  const names = Object.keys(series);
  const points = names.flatMap((name) => series[name]);
  const now = Date.now();
  // A history younger than the period is drawn from its first point (at least a minute), not squeezed
  // into the period's right edge.
  const first = Math.min(now, ...points.map(([time]) => time));
  const x0 = Math.max(now - rangeMs, Math.min(first, now - 60e3));
  const span = now - x0;
  const yMax = Math.max(1, ...points.map(([, v]) => v));
  const x = (time) => PAD.left + ((time - x0) / span) * (W - PAD.left - PAD.right);
  const y = (value) => H - PAD.bottom - (value / yMax) * (H - PAD.top - PAD.bottom);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": figure.querySelector("figcaption").textContent });
  for (const fraction of [0, 0.5, 1]) {
    const value = yMax * fraction;
    chart.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value), class: "grid" }));
    chart.append(svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end", class: "axis" }, formatNumber(value, value < 10 ? 1 : 0)));
  }
  const time = new Intl.DateTimeFormat(
    lang,
    span > 2 * 86400e3 ? { month: "short", day: "numeric" }
      : span < 600e3 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" },
  );
  for (const fraction of [0, 0.5, 1]) {
    const moment = x0 + span * fraction;
    chart.append(svg("text", { x: x(moment), y: H - 6, "text-anchor": fraction === 0 ? "start" : fraction === 1 ? "end" : "middle", class: "axis" }, time.format(new Date(moment))));
  }
  names.forEach((name, index) => {
    const line = series[name].map(([time_, value]) => `${x(time_).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    if (series[name].length === 1) {
      const [[time_, value]] = series[name];
      chart.append(svg("circle", { cx: x(time_), cy: y(value), r: 3, class: `dot line-${index}` }));
    } else if (line) chart.append(svg("polyline", { points: line, class: `line line-${index}` }));
  });
  const legend = h("ul", { class: "legend" }, ...names.map((name, index) => h("li", { class: `key-${index}` }, t(`series.${name}`), ": ", legendValue(name, series[name]))));
  const empty = points.length === 0 ? h("p", { class: "hint" }, t("history.empty")) : null;
  const caption = figure.querySelector("figcaption");
  figure.replaceChildren(caption, chart, legend, ...(empty ? [empty] : []));
  figure.dataset.points = String(points.length);
}

// Small inline SVG charts (no library): stacked vertical bars and horizontal bars.
// Each chart is an <svg role="img"> with a summary label and a <title> per bar.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

// series: [{key, label, color}], buckets: [{label, values: {key: n}}]
export function stackedBars({ series, buckets, label, width = 640, height = 210 }) {
  const left = 34, right = 8, top = 10, bottom = 24;
  const plotW = width - left - right, plotH = height - top - bottom;
  const totals = buckets.map((b) => series.reduce((sum, x) => sum + (Number(b.values[x.key]) || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  const y = (v) => top + plotH - (v / max) * plotH;
  for (const tick of [0, max / 2, max]) {
    svg.append(s("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), stroke: "#d5dbe1" }));
    svg.append(s("text", { x: left - 5, y: y(tick) + 4, "text-anchor": "end" }, Number.isInteger(tick) ? tick : tick.toFixed(1)));
  }
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, slot * 0.7);
  const every = Math.ceil(buckets.length / 8);
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let base = 0;
    const parts = [];
    for (const part of series) {
      const v = Number(b.values[part.key]) || 0;
      parts.push(`${part.label || part.key} ${v}`);
      if (v > 0) {
        svg.append(s("rect", { x, width: barW, y: y(base + v), height: Math.max(1, y(base) - y(base + v)), fill: part.color },
          s("title", {}, `${b.label} – ${part.label || part.key}: ${v}`)));
      }
      base += v;
    }
    // An invisible full-height target carries the whole bucket's numbers as a tooltip.
    svg.append(s("rect", { x, width: barW, y: top, height: plotH, fill: "transparent" },
      s("title", {}, `${b.label}: ${parts.join(", ")}`)));
    if (i % every === 0) svg.append(s("text", { x: x + barW / 2, y: height - 7, "text-anchor": "middle" }, b.label));
  });
  return svg;
}

// items: [{label, value, text, color}]: value >= 0 draws a bar; text is shown at its end.
export function horizontalBars({ items, label, width = 640, labelWidth = 200, unit = "" }) {
  const row = 24, top = 4, right = 110;
  const height = top * 2 + row * Math.max(1, items.length);
  const plotW = width - labelWidth - right;
  const max = Math.max(0, ...items.map((it) => Math.abs(Number(it.value) || 0))) || 1;
  const svg = s("svg", { class: "chart natural", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": label });
  items.forEach((it, i) => {
    const yTop = top + i * row;
    const v = Number(it.value) || 0;
    const w = Math.max(v === 0 ? 0 : 2, (Math.abs(v) / max) * plotW);
    const name = String(it.label);
    svg.append(s("text", { x: labelWidth - 8, y: yTop + 16, "text-anchor": "end" },
      name.length > 30 ? `${name.slice(0, 29)}…` : name, s("title", {}, name)));
    svg.append(s("rect", { x: labelWidth, y: yTop + 4, width: w, height: row - 8, fill: it.color || "#3b6ea8", rx: 2 },
      s("title", {}, `${name}: ${it.text ?? `${v}${unit}`}`)));
    svg.append(s("text", { x: labelWidth + w + 6, y: yTop + 16 }, it.text ?? `${v}${unit}`));
  });
  svg.append(s("line", { x1: labelWidth, x2: labelWidth, y1: 0, y2: height, stroke: "#8d99a6" }));
  return svg;
}

// Header analyzer: paste a message's headers; each hop in order with the delay it added,
// the total, flags (clock skew, no TLS) and a bar chart of the delays.
import { horizontalBars } from "./charts.js";
import { dataTable, display, fill, fmtDuration, h, timeCell } from "./ui.js";

// Delays may come as seconds, numeric text, "[d.]hh:mm:ss" or "1m30s"; null when unknown.
export function seconds(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  const text = String(value).trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  const span = text.match(/^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$/);
  if (span) {
    const total = Number(span[2] || 0) * 86400 + Number(span[3]) * 3600 + Number(span[4]) * 60 + Number(span[5]);
    return span[1] ? -total : total;
  }
  const parts = [...text.matchAll(/(-?\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)\b/g)];
  if (parts.length) {
    const factor = { ms: 0.001, s: 1, m: 60, min: 60, h: 3600, d: 86400 };
    return parts.reduce((sum, p) => sum + Number(p[1]) * factor[p[2]], 0);
  }
  return null;
}

const delayText = (value) => {
  const s = seconds(value);
  return s === null ? display(value) : fmtDuration(s);
};

function flagsOf(hop) {
  const given = Array.isArray(hop.Flags) ? hop.Flags : hop.Flags ? [hop.Flags] : [];
  const out = given.map((f) => (typeof f === "string" ? f : display(f)));
  const has = (word) => out.some((f) => f.toLowerCase().replace(/[^a-z]/g, "").includes(word));
  const delay = seconds(hop.Delay);
  if (delay !== null && delay < 0 && !has("skew")) out.push("Clock skew: this hop is dated before the previous one");
  if (hop.Tls === false && !has("tls")) out.push("No TLS");
  return out;
}

function tlsCell(hop) {
  if (hop.Tls === true) return h("span", { class: "yes" }, "Yes", hop.TlsDetail ? h("span", { class: "hint" }, ` ${hop.TlsDetail}`) : null);
  if (hop.Tls === false) return h("span", { class: "no" }, "No");
  return display(hop.TlsDetail ?? hop.Tls);
}

function fromCell(hop) {
  if (!hop.From && !hop.FromIp) return "—";
  return h("span", {}, display(hop.From), hop.FromIp ? h("span", { class: "mono" }, ` [${hop.FromIp}]`) : null);
}

function ordered(hops) {
  const list = Array.isArray(hops) ? hops.filter((x) => x && typeof x === "object") : [];
  return list.every((x) => typeof x.Hop === "number") ? [...list].sort((a, b) => a.Hop - b.Hop) : list;
}

function results(data) {
  const hops = ordered(data.Hops);
  const warnings = Array.isArray(data.Warnings) ? data.Warnings : data.Warnings ? [data.Warnings] : [];
  const rows = hops.map((hop, i) => ({ ...hop, n: hop.Hop ?? i + 1, flags: flagsOf(hop), delay: seconds(hop.Delay) }));
  const total = data.TotalDelay !== undefined && data.TotalDelay !== null
    ? delayText(data.TotalDelay)
    : fmtDuration(rows.reduce((sum, r) => sum + (r.delay || 0), 0));
  const flagged = rows.filter((r) => r.flags.length).length;
  return [
    h("h2", { id: "analysis-title", tabindex: "-1" }, "Analysis"),
    h("dl", { class: "summary" },
      h("dt", {}, "Subject"), h("dd", {}, display(data.Subject)),
      h("dt", {}, "Message-ID"), h("dd", { class: "mono" }, display(data.MessageId)),
      h("dt", {}, "Hops"), h("dd", {}, String(rows.length)),
      h("dt", {}, "Total delay"), h("dd", { "data-testid": "total-delay" }, h("strong", {}, total))),
    warnings.length ? h("ul", { class: "warnings", "aria-label": "Warnings" }, warnings.map((w) => h("li", {}, display(w)))) : null,
    dataTable({
      caption: `${rows.length} hop${rows.length === 1 ? "" : "s"}, first to last${flagged ? `; ${flagged} flagged` : ""}`,
      empty: "No Received header was found in these headers.",
      rowProps: (r) => ({ class: r.flags.length ? "flagged" : null }),
      columns: [
        { label: "Hop", render: (r) => String(r.n), rowHeader: true, class: "num" },
        { label: "From", render: fromCell, class: "wrap" },
        { label: "By", key: "By", class: "wrap" },
        { label: "With", key: "With" },
        { label: "TLS", render: tlsCell },
        { label: "Time (UTC)", render: (r) => timeCell(r.Time) },
        { label: "Delay", render: (r) => delayText(r.Delay), class: "num" },
        { label: "Flags", render: (r) => (r.flags.length ? h("ul", { class: "flags" }, r.flags.map((f) => h("li", {}, f))) : "—") },
      ],
      rows,
    }),
    rows.length ? h("h3", {}, "Delay added by each hop") : null,
    rows.length ? horizontalBars({
      label: `Delay per hop: ${rows.map((r) => `hop ${r.n} ${delayText(r.Delay)}`).join(", ")}; total ${total}`,
      items: rows.map((r) => ({
        label: `${r.n}. ${r.By || r.From || "?"}`,
        value: r.delay === null ? 0 : Math.abs(r.delay),
        text: r.delay !== null && r.delay < 0 ? `${delayText(r.Delay)} (skew)` : delayText(r.Delay),
        color: r.delay !== null && r.delay < 0 ? "#c62828" : r.Tls === false ? "#d29a00" : "#3b6ea8",
      })),
    }) : null,
  ];
}

export default async function render(view, ctx) {
  const out = h("div");
  const text = h("textarea", { id: "headers-text", rows: "12", required: true, spellcheck: "false",
    "aria-describedby": "headers-hint",
    onkeydown: (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); } });
  const analyze = h("button", { type: "submit", class: "primary" }, "Analyze");
  const form = h("form", {
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      if (!text.value.trim()) {
        ctx.fail("Paste the message headers first.");
        text.focus();
        return;
      }
      analyze.disabled = true;
      try {
        const data = await ctx.api("POST", "/api/headers/analyze", { headers: text.value });
        fill(out, results(data || {}));
        ctx.notify(`${ordered(data?.Hops).length} hop(s) analyzed.`);
        document.getElementById("analysis-title")?.focus();
      } catch (err) {
        ctx.fail(err);
      } finally {
        analyze.disabled = false;
      }
    },
  },
  h("div", { class: "field" }, h("label", { for: text.id }, "Message headers"), text,
    h("span", { class: "hint", id: "headers-hint" },
      "The header block of a message, up to the first empty line (Received, Date, Subject…). Ctrl+Enter analyzes.")),
  h("div", { class: "toolbar" }, analyze,
    h("button", { type: "button", onclick: () => { text.value = ""; fill(out); text.focus(); } }, "Clear")));
  view.append(form, out);
  text.focus();
}

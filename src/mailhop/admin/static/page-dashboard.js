// Dashboard: the last hour by outcome (5-minute buckets), queue depth, oldest message age.
import { horizontalBars, stackedBars } from "./charts.js";
import { dataTable, fill, fmtDuration, fmtTime, h } from "./ui.js";

const SERIES = [
  { key: "Received", color: "#3b6ea8" },
  { key: "Delivered", color: "#2e7d32" },
  { key: "Deferred", color: "#d29a00" },
  { key: "Failed", color: "#c62828" },
];
const REFRESH_MS = 30000;

const clock = (iso) => fmtTime(iso).slice(11, 16);

function lastHour(d) {
  const buckets = (d.Buckets || []).map((b) => ({ label: clock(b.Start), values: b }));
  const totals = d.Totals || {};
  const summary = SERIES.map((x) => `${totals[x.key] ?? 0} ${x.key.toLowerCase()}`).join(", ");
  const minutes = Math.round((d.BucketSeconds || 300) / 60);
  return h("div", { class: "card" },
    h("h2", {}, "Messages in the last hour"),
    h("ul", { class: "legend" }, SERIES.map((x) => h("li", {},
      h("span", { class: "swatch", style: `background:${x.color}`, "aria-hidden": "true" }),
      `${x.key}: `, h("strong", {}, String(totals[x.key] ?? 0))))),
    stackedBars({ series: SERIES, buckets, label: `Messages in the last hour by outcome (UTC, ${minutes}-minute buckets): ${summary}` }),
    h("details", {}, h("summary", {}, "Show the numbers"),
      dataTable({
        caption: `Recipients per ${minutes} minutes (UTC)`,
        columns: [{ label: "From", render: (b) => clock(b.Start), rowHeader: true },
          ...SERIES.map((x) => ({ label: x.key, key: x.key, class: "num" }))],
        rows: d.Buckets || [],
      })));
}

function queueDepth(d) {
  const queues = (d.Queues || []).filter((q) => Number(q.MessageCount) > 0);
  return h("div", { class: "card" },
    h("h2", {}, "Queue depth"),
    h("p", { class: "big", "data-testid": "queue-depth" }, String(d.QueueDepth ?? 0)),
    h("p", { class: "hint" }, "messages waiting in all queues"),
    queues.length
      ? horizontalBars({
        items: queues.map((q) => ({ label: q.Identity, value: q.MessageCount, text: String(q.MessageCount),
          color: q.Status === "Suspended" ? "#8d99a6" : q.Status === "Retry" ? "#d29a00" : "#3b6ea8" })),
        label: `Messages per queue: ${queues.map((q) => `${q.Identity} ${q.MessageCount}`).join(", ")}`,
        width: 300, labelWidth: 110,
      })
      : h("p", { class: "hint" }, "Every queue is empty."));
}

function oldest(d) {
  const age = d.OldestMessageAgeSeconds;
  return h("div", { class: "card" },
    h("h2", {}, "Oldest message"),
    h("p", { class: "big", "data-testid": "oldest-age" }, age === null || age === undefined ? "—" : fmtDuration(age)),
    h("p", { class: "hint" }, age === null || age === undefined ? "No message is waiting." : "since it was received"),
    h("p", {}, h("a", { href: "#/queues" }, "Open the Queue Viewer")));
}

export default async function render(view, ctx) {
  const body = h("div", { "aria-busy": "true" }, h("p", { class: "hint" }, "Loading…"));
  const stamp = h("span", { class: "hint" });
  async function refresh() {
    let data;
    try {
      data = await ctx.api("GET", "/api/dashboard");
    } catch (err) {
      ctx.fail(err);
      return;
    }
    body.removeAttribute("aria-busy");
    fill(body, h("div", { class: "cards" }, lastHour(data), queueDepth(data), oldest(data)));
    stamp.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} seconds.`;
  }
  view.append(h("div", { class: "toolbar" }, h("button", { type: "button", onclick: refresh }, "Refresh"), stamp), body);
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  ctx.onCleanup(() => clearInterval(timer));
}

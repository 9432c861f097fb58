// The Queue Viewer: queues (Retry/Suspend/Resume) and the messages of the selected queue
// (Suspend/Resume/Remove with or without NDR).
import { ask, dataTable, display, fill, fmtBytes, h, keepFocus, timeCell } from "./ui.js";

const AUTO_MS = 5000;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export default async function render(view, ctx) {
  let selected = ctx.params.get("queue") || null;
  const queuesBox = h("div", { "aria-busy": "true" }, h("p", { class: "hint" }, "Loading…"));
  const messagesBox = h("div");
  const q = (name) => `/api/queues/${encodeURIComponent(name)}`;
  const m = (id) => `/api/messages/${encodeURIComponent(String(id))}`;

  async function run(work, describe) {
    try {
      ctx.notify(describe(await work()));
    } catch (err) {
      ctx.fail(err);
    }
    await refresh();
  }

  const retry = (name) => run(() => ctx.api("POST", `${q(name)}/retry`),
    (r) => `Queue '${r.Identity ?? name}': ${plural(Number(r.RecipientsRetried ?? 0), "recipient")} retried now.`);
  const suspendQueue = (name, on) => run(() => ctx.api("POST", `${q(name)}/${on ? "suspend" : "resume"}`),
    (r) => `Queue '${r.Identity ?? name}' ${on ? "suspended" : "resumed"}.`);
  const suspendMessage = (id, on) => run(() => ctx.api("POST", `${m(id)}/${on ? "suspend" : "resume"}`),
    (r) => `Message ${id}: ${plural(Number(r.Recipients ?? 0), "recipient")} ${on ? "suspended" : "resumed"}.`);

  async function removeMessage(msg) {
    const answer = await ask({
      title: "Remove message",
      message: `Remove message ${msg.Identity} (${msg.Subject ?? "no subject"}) from ${msg.Queue}? ` +
        "With an NDR, the sender is told it was deleted by an administrator.",
      actions: [
        { label: "Remove with NDR", value: "ndr", class: "danger" },
        { label: "Remove without NDR", value: "quiet", class: "danger" },
        { label: "Cancel", value: "", autofocus: true },
      ],
    });
    if (!answer) return;
    await run(() => ctx.api("DELETE", `${m(msg.Identity)}?ndr=${answer === "ndr"}`),
      (r) => `Message ${msg.Identity} removed (${display(r.Removed)}); ${r.NdrSent ? "an NDR was sent" : "no NDR"}.`);
  }

  function select(name) {
    selected = name;
    ctx.setParams(name ? { queue: name } : {});
    refresh().then(() => document.getElementById("messages-title")?.focus());
  }

  function queuesTable(queues) {
    return dataTable({
      caption: plural(queues.length, "queue"),
      rowProps: (x) => ({ class: x.Identity === selected ? "selected" : null }),
      columns: [
        { label: "Identity", key: "Identity", rowHeader: true },
        { label: "Delivery type", key: "DeliveryType" },
        { label: "Status", key: "Status" },
        { label: "Messages", key: "MessageCount", class: "num" },
        { label: "Next hop domain", render: (x) => h("span", { class: "mono" }, display(x.NextHopDomain)) },
        { label: "Next retry (UTC)", render: (x) => timeCell(x.NextRetryTime) },
        { label: "Last error", key: "LastError", class: "wrap" },
        {
          label: "Actions",
          render: (x) => h("div", { class: "actions" },
            h("button", { type: "button", class: "small", dataset: { key: `view:${x.Identity}` },
              "aria-label": `Messages of ${x.Identity}`, "aria-pressed": String(x.Identity === selected),
              onclick: () => select(x.Identity) }, "Messages"),
            h("button", { type: "button", class: "small", dataset: { key: `retry:${x.Identity}` },
              "aria-label": `Retry ${x.Identity}`, onclick: () => retry(x.Identity) }, "Retry"),
            x.Status === "Suspended"
              ? h("button", { type: "button", class: "small", dataset: { key: `qs:${x.Identity}` },
                "aria-label": `Resume ${x.Identity}`, onclick: () => suspendQueue(x.Identity, false) }, "Resume")
              : h("button", { type: "button", class: "small", dataset: { key: `qs:${x.Identity}` },
                "aria-label": `Suspend ${x.Identity}`, onclick: () => suspendQueue(x.Identity, true) }, "Suspend")),
        },
      ],
      rows: queues,
    });
  }

  function messagesTable(messages) {
    return dataTable({
      caption: plural(messages.length, "message"),
      empty: "No message is waiting in this queue.",
      columns: [
        { label: "Identity", render: (x) => h("span", { class: "mono" }, String(x.Identity)), rowHeader: true },
        { label: "From", key: "FromAddress" },
        { label: "Recipients", render: (x) => display((x.Recipients || []).map((r) => r.Address)) },
        { label: "Subject", key: "Subject", class: "wrap" },
        { label: "Status", key: "Status" },
        { label: "Size", render: (x) => fmtBytes(x.Size), class: "num" },
        { label: "Received (UTC)", render: (x) => timeCell(x.DateReceived) },
        { label: "Retries", key: "RetryCount", class: "num" },
        { label: "Last error", key: "LastError", class: "wrap" },
        {
          label: "Actions",
          render: (x) => h("div", { class: "actions" },
            x.Status === "Suspended"
              ? h("button", { type: "button", class: "small", dataset: { key: `ms:${x.Identity}` },
                "aria-label": `Resume message ${x.Identity}`, onclick: () => suspendMessage(x.Identity, false) }, "Resume")
              : h("button", { type: "button", class: "small", dataset: { key: `ms:${x.Identity}` },
                "aria-label": `Suspend message ${x.Identity}`, onclick: () => suspendMessage(x.Identity, true) }, "Suspend"),
            h("button", { type: "button", class: "small danger", dataset: { key: `rm:${x.Identity}` },
              "aria-label": `Remove message ${x.Identity}`, onclick: () => removeMessage(x) }, "Remove…")),
        },
      ],
      rows: messages,
    });
  }

  async function refresh() {
    let queues;
    let messages = null;
    try {
      queues = await ctx.api("GET", "/api/queues");
      if (selected) messages = await ctx.api("GET", `/api/messages?queue=${encodeURIComponent(selected)}`);
    } catch (err) {
      ctx.fail(err);
      return;
    }
    if (!ctx.alive()) return;
    queuesBox.removeAttribute("aria-busy");
    keepFocus(() => {
      fill(queuesBox, queuesTable(queues));
      fill(messagesBox, ...(selected ? [
        h("h2", { id: "messages-title", tabindex: "-1" }, `Messages in queue ‘${selected}’`),
        messagesTable(messages || []),
      ] : [h("p", { class: "hint" }, "Choose Messages on a queue to see the mail waiting in it.")]));
    });
  }

  let timer = null;
  const auto = h("input", { type: "checkbox", id: "auto-refresh",
    onchange: () => {
      clearInterval(timer);
      timer = auto.checked ? setInterval(refresh, AUTO_MS) : null;
    } });
  ctx.onCleanup(() => clearInterval(timer));
  view.append(
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: refresh }, "Refresh"),
      h("span", { class: "choice" }, auto, h("label", { for: "auto-refresh" }, `Refresh every ${AUTO_MS / 1000} seconds`))),
    queuesBox, messagesBox);
  await refresh();
}

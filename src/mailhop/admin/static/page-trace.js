// Message trace (Get-MessageTrackingLog): search the tracking log, then follow one message's
// events on a vertical timeline.
import { dataTable, display, fill, fmtDuration, h, nextId, timeCell } from "./ui.js";

const EVENTS = ["RECEIVE", "SEND", "DEFER", "FAIL", "DSN", "EXPAND", "RESUBMIT", "REDIRECT", "POISONMESSAGE"];
const LIMIT = 500;
const WHAT = { RECEIVE: "Received", SEND: "Sent", DEFER: "Deferred", FAIL: "Failed", DSN: "Delivery status notification" };

function input(name, label, hint, attrs = {}) {
  const id = nextId(name);
  const el = h("input", { type: "text", id, name, spellcheck: "false", ...attrs });
  return h("div", { class: "field" }, h("label", { for: id }, label), el, hint ? h("span", { class: "hint" }, hint) : null);
}

function timeline(events) {
  let previous = null;
  return h("ol", { class: "timeline" }, events.map((e) => {
    const at = Date.parse(e.Timestamp);
    const delta = previous !== null && !Number.isNaN(at) ? (at - previous) / 1000 : null;
    if (!Number.isNaN(at)) previous = at;
    const id = String(e.EventId || "?");
    const rows = [
      ["Server", e.ServerName ? `${e.ServerName} (${e.ServerHostname ?? "?"})` : e.ServerHostname],
      ["Source", e.Source],
      ["Connector", e.ConnectorId],
      ["Client", e.ClientHostname || e.ClientIp ? `${e.ClientHostname ?? ""} [${e.ClientIp ?? "?"}]` : null],
      ["Next hop", e.NextHopDomain],
      ["Remote host", e.RemoteHost],
      ["Recipients", e.Recipients],
      ["Status", e.RecipientStatus],
      ["Related message", e.RelatedInternalMessageId],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length));
    return h("li", { class: `ev-${id.toLowerCase()}` },
      h("div", {}, h("span", { class: "what" }, `${id}`), WHAT[id] ? ` – ${WHAT[id]}` : "",
        " ", h("span", { class: "when" }, timeCell(e.Timestamp), " UTC",
          delta !== null ? ` (+${fmtDuration(delta)})` : "")),
      h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, display(v))])));
  }));
}

export default async function render(view, ctx) {
  const results = h("div");
  const detail = h("div");
  const event = h("select", { id: nextId("event"), name: "event" },
    h("option", { value: "" }, "Any event"), EVENTS.map((e) => h("option", { value: e }, e)));
  const form = h("form", { class: "card", onsubmit: (ev) => { ev.preventDefault(); search(); } },
    h("div", { class: "grid-form" },
      input("sender", "Sender", null, { inputmode: "email", placeholder: "alice@contoso.com" }),
      input("recipient", "Recipient", null, { inputmode: "email", placeholder: "bob@fabrikam.com" }),
      input("message_id", "Message-ID", "With or without < >"),
      h("div", { class: "field" }, h("label", { for: event.id }, "Event"), event),
      input("subject", "Subject contains"),
      input("start", "Start", "UTC time (2026-11-28T09:30) or ago (2h)"),
      input("end", "End", "UTC time or ago (10m)")),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Search"),
      h("button", { type: "reset", onclick: () => { fill(results); } }, "Clear")));

  async function search() {
    const query = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) query.set(k, String(v).trim());
    query.set("result_size", String(LIMIT));
    let events;
    try {
      events = await ctx.api("GET", `/api/tracking?${query}`);
    } catch (err) {
      ctx.fail(err);
      return;
    }
    fill(results,
      h("h2", { id: "results-title", tabindex: "-1" }, "Events"),
      events.length >= LIMIT ? h("p", { class: "warning" }, `Only the first ${LIMIT} events are shown: narrow the search.`) : null,
      dataTable({
        caption: `${events.length} event${events.length === 1 ? "" : "s"} (oldest first)`,
        empty: "No event matches.",
        columns: [
          { label: "Time (UTC)", render: (e) => timeCell(e.Timestamp) },
          { label: "Event", key: "EventId" },
          { label: "Sender", key: "Sender" },
          { label: "Recipients", key: "Recipients", class: "wrap" },
          { label: "Subject", key: "MessageSubject", class: "wrap" },
          { label: "Connector", key: "ConnectorId" },
          { label: "Status", key: "RecipientStatus", class: "wrap" },
          {
            label: "Message",
            render: (e) => e.InternalMessageId === undefined || e.InternalMessageId === null ? "—"
              : h("button", { type: "button", class: "small", "aria-label": `Follow message ${e.InternalMessageId}`,
                onclick: () => follow(e.InternalMessageId, true) }, "Follow"),
          },
        ],
        rows: events,
      }));
    document.getElementById("results-title")?.focus();
    ctx.notify(`${events.length} event${events.length === 1 ? "" : "s"} found.`);
  }

  async function follow(id, focus) {
    let events;
    try {
      events = await ctx.api("GET", `/api/tracking?internal_message_id=${encodeURIComponent(String(id))}&result_size=${LIMIT}`);
    } catch (err) {
      ctx.fail(err);
      return;
    }
    ctx.setParams({ id: String(id) });
    const first = events[0] || {};
    const related = [...new Set(events.map((e) => e.RelatedInternalMessageId).filter((x) => x !== undefined && x !== null))];
    fill(detail,
      h("h2", { id: "timeline-title", tabindex: "-1" }, `Message ${id}`),
      h("dl", { class: "summary" },
        h("dt", {}, "Subject"), h("dd", {}, display(first.MessageSubject)),
        h("dt", {}, "Sender"), h("dd", {}, display(first.Sender)),
        h("dt", {}, "Message-ID"), h("dd", { class: "mono" }, display(first.MessageId)),
        h("dt", {}, "Events"), h("dd", {}, String(events.length))),
      events.length ? timeline(events) : h("p", { class: "hint" }, "The tracking log has no event for this message."),
      related.map((r) => h("p", {}, h("button", { type: "button", onclick: () => follow(r, true) },
        `Follow the notification message ${r}`))));
    if (focus) document.getElementById("timeline-title")?.focus();
  }

  view.append(form, results, detail);
  const id = ctx.params.get("id");
  if (id) await follow(id, false);
}

// Send connectors (Get-SendConnector): enable/disable, edit, delete with confirmation.
import { editConnector } from "./connector-edit.js";
import { ask, dataTable, display, fill, h, keepFocus, yesNo } from "./ui.js";

function delivery(c) {
  if (c.DNSRoutingEnabled !== false) return "MX record";
  return h("span", {}, "Smart hosts: ", h("span", { class: "mono" }, display(c.SmartHosts)));
}

export default async function render(view, ctx) {
  const holder = h("div", { "aria-busy": "true" }, h("p", { class: "hint" }, "Loading…"));
  const path = (c) => `/api/connectors/${encodeURIComponent(c.Identity)}`;

  async function load() {
    let connectors;
    try {
      connectors = await ctx.api("GET", "/api/connectors");
    } catch (err) {
      ctx.fail(err);
      return;
    }
    holder.removeAttribute("aria-busy");
    keepFocus(() => fill(holder, table(connectors)));
  }

  async function act(work, message) {
    try {
      await work();
      ctx.notify(message);
    } catch (err) {
      ctx.fail(err);
    }
    await load();
  }

  function toggle(c) {
    const enabled = c.Enabled === false;
    return act(() => ctx.api("PATCH", path(c), { Enabled: enabled }),
      `Send connector '${c.Identity}' ${enabled ? "enabled" : "disabled"}.`);
  }

  async function edit(c) {
    const updated = await editConnector(c, ctx);
    if (updated) await act(async () => {}, `Send connector '${updated.Identity}' saved.`);
  }

  async function remove(c) {
    const answer = await ask({
      title: "Delete send connector",
      message: `Delete the send connector '${c.Identity}'? Mail for its address spaces will use another ` +
        "connector or wait in the Unreachable queue. This cannot be undone.",
      actions: [
        { label: "Delete", value: "delete", class: "danger" },
        { label: "Cancel", value: "", autofocus: true },
      ],
    });
    if (answer === "delete") await act(() => ctx.api("DELETE", path(c)), `Send connector '${c.Identity}' deleted.`);
  }

  function table(connectors) {
    return dataTable({
      caption: `${connectors.length} send connector${connectors.length === 1 ? "" : "s"}`,
      empty: "There are no send connectors: mail cannot leave. Create one with New send connector.",
      columns: [
        { label: "Name", key: "Identity", rowHeader: true },
        { label: "Usage", key: "Usage" },
        { label: "Address spaces", render: (c) => h("span", { class: "mono" }, display(c.AddressSpaces)) },
        { label: "Delivery", render: delivery },
        { label: "Source servers", key: "SourceTransportServers" },
        { label: "Enabled", render: (c) => yesNo(c.Enabled !== false) },
        {
          label: "Actions",
          render: (c) => h("div", { class: "actions" },
            h("button", { type: "button", class: "small", dataset: { key: `toggle:${c.Identity}` },
              "aria-label": `${c.Enabled === false ? "Enable" : "Disable"} ${c.Identity}`, onclick: () => toggle(c) },
            c.Enabled === false ? "Enable" : "Disable"),
            h("button", { type: "button", class: "small", dataset: { key: `edit:${c.Identity}` },
              "aria-label": `Edit ${c.Identity}`, onclick: () => edit(c) }, "Edit"),
            h("button", { type: "button", class: "small danger", dataset: { key: `delete:${c.Identity}` },
              "aria-label": `Delete ${c.Identity}`, onclick: () => remove(c) }, "Delete")),
        },
      ],
      rows: connectors,
    });
  }

  view.append(
    h("div", { class: "toolbar" },
      h("a", { class: "button primary", href: "#/connectors/new" }, "New send connector"),
      h("button", { type: "button", onclick: load }, "Refresh")),
    holder);
  await load();
}

// The edit dialog of a send connector (Set-SendConnector): sends only what changed.
import { field, h, nextId } from "./ui.js";

const list = (text) => text.split(/[,\n]/).map((x) => x.trim()).filter(Boolean);
const joined = (value) => (Array.isArray(value) ? value.join(", ") : value ?? "");

// [Exchange property, label, kind, hint]
const FIELDS = [
  ["Name", "Name", "text"],
  ["AddressSpaces", "Address spaces", "list", "Comma-separated: *, contoso.com;2, *.contoso.com"],
  ["DNSRoutingEnabled", "Network settings", "routing"],
  ["SmartHosts", "Smart hosts", "list", "host, host:port or [IP], comma-separated"],
  ["Port", "Port", "number"],
  ["SourceTransportServers", "Source servers", "list", "Comma-separated server names"],
  ["MaxMessageSize", "Maximum message size", "text", "e.g. 35MB or unlimited"],
  ["Fqdn", "FQDN said in EHLO", "text", "Empty: the server's FQDN"],
  ["RequireTLS", "Require TLS", "bool"],
  ["Comment", "Comment", "text"],
];

function control(kind, value) {
  if (kind === "routing") {
    return h("select", {},
      h("option", { value: "true", selected: value !== false }, "MX record associated with recipient domain"),
      h("option", { value: "false", selected: value === false }, "Route mail through smart hosts"));
  }
  if (kind === "bool") return h("input", { type: "checkbox", checked: Boolean(value) });
  if (kind === "number") return h("input", { type: "number", min: "0", max: "65535", value: String(value ?? "") });
  return h("input", { type: "text", value: kind === "list" ? joined(value) : String(value ?? ""), spellcheck: "false" });
}

function read(kind, input) {
  if (kind === "routing") return input.value === "true";
  if (kind === "bool") return input.checked;
  if (kind === "number") return input.value.trim() === "" ? null : Number(input.value);
  if (kind === "list") return list(input.value);
  return input.value.trim() === "" ? null : input.value.trim();
}

function same(kind, before, after) {
  if (kind === "list") return joined(before) === joined(after);
  if (kind === "text") return (before ?? null) === after || (before === "" && after === null);
  return before === after;
}

// Resolves with the updated connector, or null when cancelled.
export function editConnector(connector, ctx) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId("edit");
    const error = h("div", { class: "alert", role: "alert" });
    const inputs = FIELDS.map(([prop, label, kind, hint]) => {
      const input = control(kind, connector[prop]);
      const [wrapper] = kind === "bool"
        ? [h("div", { class: "choice" }, input, h("label", { for: (input.id = nextId("f")) }, label))]
        : field(label, input, hint);
      return { prop, kind, input, wrapper };
    });
    let result = null;
    const form = h("form", {
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const changes = {};
        for (const { prop, kind, input } of inputs) {
          const value = read(kind, input);
          if (!same(kind, connector[prop], value)) changes[prop] = value;
        }
        if (!Object.keys(changes).length) {
          dialog.close();
          return;
        }
        try {
          result = await ctx.api("PATCH", `/api/connectors/${encodeURIComponent(connector.Identity)}`, changes);
          dialog.close();
        } catch (err) {
          error.textContent = err.message;
          inputs[0].input.focus();
        }
      },
    },
    h("div", { class: "grid-form" }, inputs.map((x) => x.wrapper)),
    h("div", { class: "wizard-buttons" },
      h("button", { type: "submit", class: "primary" }, "Save"),
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));
    const dialog = h("dialog", { "aria-labelledby": titleId },
      h("h2", { id: titleId }, `Edit send connector ‘${connector.Identity}’`), error, form);
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    inputs[0].input.focus();
  });
}

// The TXT records of a DKIM signing config, each name and value with a copy button.
// Copying uses the asynchronous clipboard; where it is refused (no permission, not a
// secure context) the text is selected instead, for Ctrl+C.
import { dataTable, h } from "./ui.js";

const ROLE_HINT = {
  Active: "signs now",
  Pending: "signs once published",
  Inactive: "signed earlier mail",
};

function select(node) {
  const range = document.createRange();
  range.selectNodeContents(node);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

export async function copyText(text, node, what, ctx) {
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    ctx.notify(`${what} copied to the clipboard.`);
  } catch {
    select(node);
    ctx.notify(`${what} is selected: press Ctrl+C to copy it.`);
  }
}

function copyable(text, what, ctx, cls) {
  const shown = h("code", { class: cls }, text);
  return h("div", { class: "copyable" }, shown,
    h("button", { type: "button", class: "small", "aria-label": `Copy ${what}`,
      onclick: () => copyText(text, shown, what, ctx) }, "Copy"));
}

export function recordsTable(config, ctx) {
  return dataTable({
    caption: "TXT records to publish in DNS",
    empty: "This config has no keys.",
    columns: [
      { label: "Selector", key: "Selector", rowHeader: true },
      { label: "Role", render: (r) => h("span", {}, h("span", { class: `badge role-${r.Role.toLowerCase()}` }, r.Role),
        " ", h("span", { class: "hint" }, ROLE_HINT[r.Role] || "")) },
      { label: "Name", render: (r) => copyable(r.Name, `the name of ${r.Selector}`, ctx, "record-name") },
      { label: "Type", key: "Type" },
      { label: "Value", class: "record", render: (r) => copyable(r.Value, `the value of ${r.Selector}`, ctx, "record-value") },
    ],
    rows: config.Records || [],
  });
}

// DOM helpers shared by the pages: elements without innerHTML, tables, dialogs, formats.

let uid = 0;
export const nextId = (prefix = "id") => `${prefix}-${++uid}`;

function appendChildren(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(node, child);
    else if (child instanceof Node) node.append(child);
    else node.append(document.createTextNode(String(child)));
  }
}

// h("button", {type: "button", onclick}, "Retry"): properties for value and for booleans the
// element has (checked, hidden...), attributes for the rest (true: present); text is always
// text, never parsed as HTML.
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
    else if (key === "style") node.style.cssText = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value" || (typeof value === "boolean" && key in node)) node[key] = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  appendChildren(node, children);
  return node;
}

// Replace a node's children; nested arrays are flattened, null and false are skipped.
export function fill(node, ...children) {
  node.replaceChildren();
  appendChildren(node, children);
  return node;
}

export function display(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.length ? value.map(display).join(", ") : "—";
  if (typeof value === "boolean") return value ? "Yes" : "No";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function yesNo(value) {
  return h("span", { class: value ? "yes" : "no" }, value ? "Yes" : "No");
}

// columns: [{label, key | render(row), class, rowHeader}]
export function dataTable({ caption, columns, rows, empty = "Nothing to show.", rowProps }) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.length
    ? rows.map((row) => h("tr", rowProps ? rowProps(row) : {}, columns.map((c) => {
      const content = c.render ? c.render(row) : display(row[c.key]);
      return c.rowHeader ? h("th", { scope: "row", class: c.class }, content) : h("td", { class: c.class }, content);
    })))
    : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty));
  return h("div", { class: "table-wrap" },
    h("table", {}, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)));
}

// Re-render without losing the keyboard user's place: the element with the same
// data-key as the focused one gets the focus back.
export function keepFocus(fn) {
  const key = document.activeElement?.dataset?.key;
  fn();
  if (!key) return;
  const again = [...document.querySelectorAll("[data-key]")].find((n) => n.dataset.key === key);
  if (again && !again.disabled) again.focus();
  else document.querySelector("main h1")?.focus();
}

// A modal question: resolves with the value of the button pressed, or null (Escape, Cancel).
export function ask({ title, message, actions }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId("dlg");
    const dialog = h("dialog", { "aria-labelledby": titleId },
      h("h2", { id: titleId }, title),
      h("p", {}, message),
      h("div", { class: "wizard-buttons" }, actions.map((a) => h("button", {
        type: "button", class: a.class, autofocus: Boolean(a.autofocus),
        onclick: () => dialog.close(a.value || ""),
      }, a.label))));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue || null);
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("[autofocus]")?.focus();
  });
}

const pad = (n) => String(n).padStart(2, "0");

// ISO times from the API are UTC: shown as "2026-11-28 05:27:03" (UTC), full value in title.
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

export function timeCell(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, fmtTime(iso)) : "—";
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  const s = Number(seconds);
  const sign = s < 0 ? "−" : "";
  const a = Math.abs(s);
  if (a < 10) return `${sign}${Number(a.toFixed(a < 1 && a > 0 ? 2 : 1))} s`;
  if (a < 60) return `${sign}${Math.round(a)} s`;
  if (a < 3600) return `${sign}${Math.floor(a / 60)} min ${Math.round(a % 60)} s`;
  if (a < 86400) return `${sign}${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`;
  return `${sign}${Math.floor(a / 86400)} d ${Math.floor((a % 86400) / 3600)} h`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "unlimited";
  const v = Number(n);
  if (Number.isNaN(v)) return String(n);
  if (v < 1024) return `${v} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let x = v / 1024;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
  return `${Number(x.toFixed(1))} ${units[i]}`;
}

// A labelled input in a .field wrapper; returns [wrapper, input].
export function field(label, input, hint) {
  const id = input.id || nextId("f");
  input.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return [h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("span", { class: "hint", id: hintId }, hint) : null), input];
}

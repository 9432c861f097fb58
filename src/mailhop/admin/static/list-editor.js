// An editable list of rows (smart hosts, address spaces, source servers) as a table of inputs,
// with Add and Remove buttons reachable by keyboard.
import { h } from "./ui.js";

// columns: [{name, label, type = "text", value = "", attrs}], noun: "smart host";
// primary: the column that makes a row count (a row with it empty is ignored).
export function listEditor({ caption, noun, columns, rows = [], primary = columns[0].name }) {
  const body = h("tbody");
  const status = h("span", { class: "hint", "aria-live": "polite" });

  function renumber() {
    [...body.rows].forEach((tr, i) => {
      tr.querySelectorAll("input").forEach((input, j) => {
        const label = columns[j].label;
        input.setAttribute("aria-label", label.toLowerCase() === noun.toLowerCase()
          ? `${label} ${i + 1}` : `${label} of ${noun} ${i + 1}`);
      });
      tr.querySelector("button").setAttribute("aria-label", `Remove ${noun} ${i + 1}`);
    });
  }

  function addRow(values = {}, focus = false) {
    const inputs = columns.map((c) => h("input", {
      type: c.type || "text", name: c.name, spellcheck: "false",
      value: String(values[c.name] ?? c.value ?? ""), ...(c.attrs || {}),
    }));
    const tr = h("tr", {}, inputs.map((input) => h("td", {}, input)),
      h("td", {}, h("button", {
        type: "button", class: "small",
        onclick: () => {
          const next = tr.nextElementSibling || tr.previousElementSibling;
          tr.remove();
          renumber();
          status.textContent = `${noun[0].toUpperCase()}${noun.slice(1)} removed.`;
          (next?.querySelector("input") || addButton).focus();
        },
      }, "Remove")));
    body.append(tr);
    renumber();
    if (focus) inputs[0].focus();
    return tr;
  }

  const addButton = h("button", { type: "button", onclick: () => addRow({}, true) }, `Add ${noun}`);
  for (const row of rows) addRow(row);

  const element = h("div", { class: "list-editor" },
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)),
        h("th", { scope: "col" }, h("span", { class: "hint" }, "Remove")))),
      body)),
    h("div", { class: "toolbar" }, addButton, status));

  return {
    element,
    addRow,
    values: () => [...body.rows]
      .map((tr) => Object.fromEntries([...tr.querySelectorAll("input")].map((i) => [i.name, i.value.trim()])))
      .filter((row) => row[primary] !== ""),
    count: () => body.rows.length,
    focus: () => (body.querySelector("input") || addButton).focus(),
  };
}

// DKIM signing configs (New-, Get-, Set-, Rotate-, Remove-DkimSigningConfig): the domains,
// and for one domain (#/dkim?domain=...) the records to publish, a look at DNS and rotation.
// Read-only sessions see everything but no button that would change something.
import { recordsTable } from "./dkim-records.js";
import { ask, dataTable, display, field, fill, h, keepFocus, timeCell, yesNo } from "./ui.js";

const path = (domain) => `/api/dkim/${encodeURIComponent(domain)}`;
const STATUS = { Valid: "pass", KeyNotPublished: "warn", KeyMismatch: "fail", Disabled: "" };

export function statusBadge(status) {
  if (!status) return h("span", { class: "hint" }, "Not checked");
  return h("span", { class: `badge ${STATUS[status] ?? ""}`.trim() }, status);
}

function readOnlyHint() {
  return h("p", { class: "hint" }, "This session is read-only: creating, checking DNS, rotating and " +
    "changing DKIM signing configs need a full-control token.");
}

export default async function render(view, ctx) {
  const domain = ctx.params.get("domain");
  if (domain) await detail(view, ctx, domain);
  else await overview(view, ctx);
}

// --- every domain ------------------------------------------------------------------------

function newForm(ctx) {
  const [domainField, domain] = field("Domain", h("input", { type: "text", required: true, spellcheck: "false",
    placeholder: "contoso.com", autocomplete: "off" }), "The d= of the signatures: mail whose From: is in it is signed.");
  const [sizeField, size] = field("RSA key size", h("select", {},
    ["1024", "2048", "3072", "4096"].map((v) => h("option", { value: v, selected: v === "2048" }, `${v} bits`))));
  const check = (label, checked, hint) => {
    const input = h("input", { type: "checkbox", checked });
    input.id = `dkim-${label.replace(/\W+/g, "-").toLowerCase()}`;
    return [h("div", { class: "choice" }, input, h("label", { for: input.id }, label,
      hint ? h("span", { class: "hint" }, hint) : null)), input];
  };
  const [rsaField, rsa] = check("RSA (rsa-sha256)", true, "Every verifier knows it.");
  const [edField, ed] = check("Ed25519 (ed25519-sha256)", true, "Short keys, signed beside RSA.");
  const [subField, subs] = check("Sign sub-domains too", false);
  const create = h("button", { type: "submit", class: "primary" }, "Create");
  return h("form", {
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      const name = domain.value.trim();
      if (!name) {
        ctx.fail("Enter the domain to sign for.");
        domain.focus();
        return;
      }
      const algorithms = [rsa.checked && "rsa-sha256", ed.checked && "ed25519-sha256"].filter(Boolean);
      create.disabled = true;
      try {
        const made = await ctx.api("POST", "/api/dkim", { Domain: name, Algorithms: algorithms,
          KeySize: Number(size.value), SubDomains: subs.checked });
        ctx.navigate(`#/dkim?domain=${encodeURIComponent(made.Domain)}`,
          `DKIM signing config for '${made.Domain}' created: publish its records.`);
      } catch (err) {
        ctx.fail(err);
        domain.focus();
      } finally {
        create.disabled = false;
      }
    },
  },
  h("fieldset", {}, h("legend", {}, "New DKIM signing config"),
    h("div", { class: "grid-form" }, domainField, sizeField),
    h("div", { class: "grid-form" }, rsaField, edField, subField),
    h("div", { class: "toolbar" }, create)));
}

async function overview(view, ctx) {
  const holder = h("div", { "aria-busy": "true" }, h("p", { class: "hint" }, "Loading…"));
  const writable = !ctx.session.readOnly;

  async function load() {
    let configs;
    try {
      configs = await ctx.api("GET", "/api/dkim");
    } catch (err) {
      ctx.fail(err);
      return;
    }
    if (!ctx.alive()) return;
    holder.removeAttribute("aria-busy");
    keepFocus(() => fill(holder, table(configs)));
  }

  async function toggle(c) {
    const enabled = c.Enabled === false;
    try {
      await ctx.api("PATCH", path(c.Domain), { Enabled: enabled });
      ctx.notify(`DKIM signing for '${c.Domain}' ${enabled ? "enabled" : "disabled"}.`);
    } catch (err) {
      ctx.fail(err);
    }
    await load();
  }

  function table(configs) {
    const columns = [
      { label: "Domain", rowHeader: true,
        render: (c) => h("a", { href: `#/dkim?domain=${encodeURIComponent(c.Domain)}` }, c.Domain) },
      { label: "Enabled", render: (c) => yesNo(c.Enabled !== false) },
      { label: "Status", render: (c) => statusBadge(c.Status) },
      { label: "Active selector", render: (c) => h("span", { class: "mono" }, display(c.ActiveSelectors)) },
      { label: "Pending selector", render: (c) => h("span", { class: "mono" }, display(c.PendingSelector)) },
      { label: "Algorithms", key: "Algorithms" },
      { label: "Last checked", render: (c) => timeCell(c.LastChecked) },
    ];
    if (writable) {
      columns.push({ label: "Actions", render: (c) => h("div", { class: "actions" },
        h("button", { type: "button", class: "small", dataset: { key: `toggle:${c.Domain}` },
          "aria-label": `${c.Enabled === false ? "Enable" : "Disable"} ${c.Domain}`, onclick: () => toggle(c) },
        c.Enabled === false ? "Enable" : "Disable")) });
    }
    return dataTable({
      caption: `${configs.length} DKIM signing config${configs.length === 1 ? "" : "s"}`,
      empty: "No domain has a DKIM signing config: mail leaves unsigned.",
      columns, rows: configs,
    });
  }

  view.append(
    writable ? newForm(ctx) : readOnlyHint(),
    h("div", { class: "toolbar" }, h("button", { type: "button", onclick: load }, "Refresh")),
    holder);
  await load();
}

// --- one domain --------------------------------------------------------------------------

function summary(c) {
  const rows = [
    ["Enabled", yesNo(c.Enabled !== false)],
    ["Sign sub-domains", yesNo(Boolean(c.SubDomains))],
    ["Algorithms", display(c.Algorithms)],
    ["RSA key size", c.KeySize ? `${c.KeySize} bits` : "—"],
    ["Active selector", h("span", { class: "mono" }, display(c.ActiveSelectors))],
    ["Pending selector", h("span", { class: "mono" }, display(c.PendingSelector))],
    ["Status", h("span", {}, statusBadge(c.Status), c.StatusDetail ? ` ${c.StatusDetail}` : "")],
    ["Last checked", timeCell(c.LastChecked)],
    ["Keys created", timeCell(c.KeyCreationTime)],
    ["Last rotation", timeCell(c.LastRotationTime)],
    ["Inactive selector removable after", timeCell(c.InactiveSelectorRemovableAfter)],
  ];
  return h("dl", { class: "summary" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function nextSelector(c) {
  return (c.ActiveSelector || "selector1").startsWith("selector1") ? "selector2" : "selector1";
}

async function detail(view, ctx, domain) {
  const holder = h("div", { "aria-busy": "true" }, h("p", { class: "hint" }, "Loading…"));
  const writable = !ctx.session.readOnly;

  function show(c) {
    holder.removeAttribute("aria-busy");
    keepFocus(() => fill(holder,
      h("h2", { id: "dkim-domain", tabindex: "-1" }, c.Domain),
      writable ? actions(c) : readOnlyHint(),
      c.PendingSelector ? h("p", { class: "warning", id: "dkim-pending" },
        `Signing moves to ${c.PendingSelector} once its records (role Pending) are published in DNS: ` +
        "publish them, then press Check DNS now. Until then the Active selector signs.") : null,
      summary(c),
      h("p", { class: "hint" }, "Publish one TXT record per name. Some DNS hosts want a long value split into " +
        "strings of at most 255 characters; the value is the same."),
      recordsTable(c, ctx)));
  }

  async function load() {
    try {
      const c = await ctx.api("GET", path(domain));
      if (ctx.alive()) show(c);
    } catch (err) {
      ctx.fail(err);
      if (ctx.alive()) fill(holder, h("p", {}, h("a", { href: "#/dkim" }, "All DKIM signing configs")));
    }
  }

  async function act(work, message) {
    try {
      const c = await work();
      if (!ctx.alive()) return;
      show(c);
      ctx.notify(typeof message === "function" ? message(c) : message);
    } catch (err) {
      ctx.fail(err);
      await load();
    }
  }

  const checkDns = () => act(() => ctx.api("POST", `${path(domain)}/check`),
    (c) => `DNS checked: ${c.Status}${c.StatusDetail ? ` (${c.StatusDetail})` : ""}.`);

  async function rotate(c) {
    const next = nextSelector(c);
    const answer = await ask({
      title: "Rotate DKIM keys",
      message: `New keys are made for ${next}${c.PendingSelector ? " (replacing its pending keys)" : ""}. ` +
        `Signing moves to ${next} only once its records are published in DNS: publish the new Pending ` +
        `records, then press Check DNS now (the server also looks on its own). Until then ${c.ActiveSelector} ` +
        "signs as before, and its records must stay published.",
      actions: [
        { label: "Rotate", value: "rotate", class: "primary" },
        { label: "Cancel", value: "", autofocus: true },
      ],
    });
    if (answer !== "rotate") return;
    await act(() => ctx.api("POST", `${path(domain)}/rotate`, {}),
      (r) => `New keys made for ${r.PendingSelector || r.ActiveSelector}: publish its records.`);
  }

  const toggle = (c) => act(() => ctx.api("PATCH", path(domain), { Enabled: c.Enabled === false }),
    (r) => `DKIM signing for '${r.Domain}' ${r.Enabled ? "enabled" : "disabled"}.`);

  async function remove(c) {
    const answer = await ask({
      title: "Delete DKIM signing config",
      message: `Delete the DKIM signing config of '${c.Domain}' and its keys? Mail from it leaves unsigned ` +
        "from now on, and new keys need new records. This cannot be undone.",
      actions: [
        { label: "Delete", value: "delete", class: "danger" },
        { label: "Cancel", value: "", autofocus: true },
      ],
    });
    if (answer !== "delete") return;
    try {
      await ctx.api("DELETE", path(domain));
      ctx.navigate("#/dkim", `DKIM signing config of '${c.Domain}' deleted.`);
    } catch (err) {
      ctx.fail(err);
    }
  }

  function actions(c) {
    return h("div", { class: "toolbar" },
      h("button", { type: "button", class: "primary", dataset: { key: "check" }, onclick: checkDns }, "Check DNS now"),
      h("button", { type: "button", dataset: { key: "rotate" }, onclick: () => rotate(c) }, "Rotate keys…"),
      h("button", { type: "button", dataset: { key: "toggle" }, onclick: () => toggle(c) },
        c.Enabled === false ? "Enable" : "Disable"),
      h("button", { type: "button", class: "danger", dataset: { key: "delete" }, onclick: () => remove(c) }, "Delete…"));
  }

  view.append(h("p", {}, h("a", { href: "#/dkim" }, "← All DKIM signing configs")), holder);
  await load();
}

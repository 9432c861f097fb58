// Domain readiness: what receivers will find for a sending domain (SPF, DKIM, DMARC, reverse
// DNS of the sending addresses, MTA-STS, TLS-RPT), each row Pass, Warn or Fail with the evidence
// and the fix.  The query stays in the address (#/readiness?domain=...&ip=...), so a result can
// be shared and reloaded.  It only reads, so read-only sessions may use it.
import { dataTable, display, field, fill, h } from "./ui.js";

const RESULT = { Pass: "pass", Warn: "warn", Fail: "fail" };

export function resultBadge(result) {
  return h("span", { class: `badge ${RESULT[result] ?? ""}`.trim() }, result || "—");
}

const ips = (text) => text.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);

function report(data) {
  return [
    h("h2", { id: "readiness-title", tabindex: "-1" }, `Readiness of ${data.Domain}: `, resultBadge(data.Result)),
    h("dl", { class: "summary" },
      h("dt", {}, "Sending addresses"),
      h("dd", {}, h("span", { class: "mono" }, display(data.SendingIps)),
        data.SendingIpsFrom ? h("span", { class: "hint" }, ` (${data.SendingIpsFrom})`) : null)),
    dataTable({
      caption: `${(data.Checks || []).length} checks`,
      empty: "No checks were made.",
      columns: [
        { label: "Check", key: "Check", rowHeader: true },
        { label: "Result", render: (r) => resultBadge(r.Result) },
        { label: "Address", render: (r) => h("span", { class: "mono" }, display(r.Address)) },
        { label: "Evidence", class: "wrap", render: (r) => h("span", { class: "evidence" }, display(r.Evidence)) },
        { label: "Fix", class: "wrap", render: (r) => (r.Fix ? h("span", { class: "fix" }, r.Fix) : "—") },
      ],
      rows: data.Checks || [],
      rowProps: (r) => ({ class: r.Result === "Fail" ? "flagged" : null, dataset: { check: r.Check } }),
    }),
  ];
}

export default async function render(view, ctx) {
  const out = h("div");
  const [domainField, domain] = field("Domain", h("input", { type: "text", required: true, spellcheck: "false",
    placeholder: "contoso.com", autocomplete: "off", value: ctx.params.get("domain") || "" }));
  const [ipField, ip] = field("Sending IP addresses", h("input", { type: "text", spellcheck: "false",
    autocomplete: "off", value: ctx.params.getAll("ip").join(", ") }),
  "Optional, comma-separated. Empty: the addresses this server sends from.");
  const run = h("button", { type: "submit", class: "primary" }, "Check");

  async function check() {
    const name = domain.value.trim();
    if (!name) {
      ctx.fail("Enter the domain to check.");
      domain.focus();
      return;
    }
    const query = new URLSearchParams();
    for (const a of ips(ip.value)) query.append("ip", a);
    ctx.setParams([["domain", name], ...query]);
    run.disabled = true;
    out.setAttribute("aria-busy", "true");
    fill(out, h("p", { class: "hint" }, "Looking at DNS…"));
    try {
      const data = await ctx.api("GET", `/api/domains/${encodeURIComponent(name)}/readiness` +
        (query.toString() ? `?${query}` : ""));
      if (!ctx.alive()) return;
      fill(out, report(data || {}));
      const count = (result) => (data.Checks || []).filter((r) => r.Result === result).length;
      ctx.notify(`${data.Domain} checked: ${data.Result} (${count("Pass")} pass, ${count("Warn")} warn, ` +
        `${count("Fail")} fail).`);
      document.getElementById("readiness-title")?.focus();
    } catch (err) {
      fill(out);
      ctx.fail(err);
    } finally {
      run.disabled = false;
      out.removeAttribute("aria-busy");
    }
  }

  const form = h("form", { novalidate: true, onsubmit: (event) => { event.preventDefault(); check(); } },
    h("div", { class: "grid-form" }, domainField, ipField),
    h("div", { class: "toolbar" }, run));
  view.append(h("p", { class: "hint" }, "What receivers will find for mail from a domain: SPF, DKIM, DMARC, " +
    "reverse DNS of the sending addresses, MTA-STS and TLS-RPT."), form, out);
  if (domain.value) await check();
  else domain.focus();
}

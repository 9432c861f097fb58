// The new send connector wizard, in the EAC's steps: name and usage, network settings,
// address space, source servers, Finish.  Validation is the API's (the CLI's rules and messages).
import { listEditor } from "./list-editor.js";
import { h, nextId } from "./ui.js";

const STEPS = ["Name and type", "Network settings", "Address space", "Source server"];
const USAGES = [
  ["Custom", "Send messages to non-Microsoft mail platforms or anything else."],
  ["Internal", "Send messages between internal messaging environments; no message size limit."],
  ["Internet", "Send messages to the Internet, by MX records or through a smart host; 35 MB limit."],
  ["Partner", "Send messages to a partner organization over TLS verified for its domain; 35 MB limit."],
];

function radio(name, value, label, hint, checked) {
  const id = nextId(name);
  return h("div", { class: "choice" },
    h("input", { type: "radio", name, value, id, checked, "aria-describedby": hint ? `${id}-hint` : null }),
    h("div", {}, h("label", { for: id }, label), hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null));
}

// Which step an API message is about, so that Finish can take the user back there.
function stepOf(error) {
  const text = error.message || "";
  if (error.status === 409 || /^(Name|Usage)\b/.test(text)) return 0;
  if (/^AddressSpaces/.test(text)) return 2;
  if (/^SourceTransportServers/.test(text)) return 3;
  if (/SmartHosts|DNSRoutingEnabled/.test(text)) return 1;
  return null;
}

async function defaultServer(ctx) {
  try {
    const receive = await ctx.api("GET", "/api/receive-connectors");
    return receive.find((r) => r.Server)?.Server || "";
  } catch {
    return "";
  }
}

export default async function render(view, ctx) {
  let step = 0;
  const server = await defaultServer(ctx);

  const name = h("input", { type: "text", id: nextId("name"), maxlength: "64", required: true, autocomplete: "off" });
  const smartHosts = listEditor({
    caption: "Smart hosts", noun: "smart host",
    columns: [{ name: "host", label: "Smart host", attrs: { placeholder: "relay.contoso.com, host:587 or [10.0.0.5]" } }],
  });
  const spaces = listEditor({
    caption: "Address spaces", noun: "address space", primary: "address",
    columns: [
      { name: "type", label: "Type", value: "SMTP", attrs: { size: "6" } },
      { name: "address", label: "Address space",
        attrs: { placeholder: "* or contoso.com or *.contoso.com", "data-autofocus": "" } },
      { name: "cost", label: "Cost", type: "number", value: "1", attrs: { min: "1", max: "100" } },
    ],
    rows: [{ type: "SMTP", address: "*", cost: "1" }],
  });
  const servers = listEditor({
    caption: "Source servers", noun: "source server",
    columns: [{ name: "server", label: "Server" }],
    rows: [{ server }],
  });

  const usage = h("fieldset", {}, h("legend", {}, "Type"), USAGES.map(([u, hint]) => radio("usage", u, u, hint, u === "Custom")));
  const routeMx = radio("routing", "mx", "MX record associated with recipient domain",
    "Look up the recipient domain's MX records in DNS and deliver there.", true);
  const routeSmart = radio("routing", "smart", "Route mail through smart hosts",
    "Hand every message to one of these hosts, which deliver it.", false);
  routeSmart.querySelector("input").addEventListener("change", () => {
    if (!smartHosts.values().length && !smartHosts.count()) smartHosts.addRow({}, false);
  });

  const steps = [
    h("fieldset", {}, h("legend", {}, "Name and type of the new send connector"),
      h("div", { class: "field" }, h("label", { for: name.id }, "Name"), name),
      usage),
    h("fieldset", {}, h("legend", {}, "How do you want to send mail with this connector?"),
      routeMx, routeSmart, h("div", { class: "indent" }, smartHosts.element)),
    h("fieldset", {}, h("legend", {}, "Address space"),
      h("p", { class: "hint" }, "The recipient domains this connector sends to: * for every domain. " +
        "The lowest cost wins among equally specific address spaces (cost 1-100)."),
      spaces.element),
    h("fieldset", {}, h("legend", {}, "Source server"),
      h("p", { class: "hint" }, "The transport servers that send mail through this connector."),
      servers.element),
  ];

  const progress = h("ol", { class: "steps", "aria-label": "Steps" }, STEPS.map((s) => h("li", {}, s)));
  const error = h("div", { class: "alert", role: "alert" });
  const back = h("button", { type: "button", onclick: () => go(step - 1) }, "Back");
  // One submit button, Next then Finish: Enter in any field always means "go on".
  const next = h("button", { type: "submit", class: "primary" }, "Next");
  const cancel = h("button", { type: "button", onclick: () => ctx.navigate("#/connectors") }, "Cancel");

  function go(index, focus = true) {
    step = Math.max(0, Math.min(STEPS.length - 1, index));
    steps.forEach((fs, i) => { fs.hidden = i !== step; });
    [...progress.children].forEach((li, i) => {
      if (i === step) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
      li.classList.toggle("done", i < step);
    });
    back.disabled = step === 0;
    next.textContent = step === STEPS.length - 1 ? "Finish" : "Next";
    if (focus) {
      const here = steps[step];
      const first = here.querySelector("[data-autofocus]") || here.querySelector("input:checked, input:not([type=radio])");
      (first || next).focus();
    }
  }

  function body() {
    const hosts = smartHosts.values().map((r) => r.host);
    const out = {
      Name: name.value.trim(),
      Usage: usage.querySelector("input:checked")?.value || "Custom",
      DNSRoutingEnabled: !routeSmart.querySelector("input").checked,
      AddressSpaces: spaces.values().map((r) => {
        const type = r.type && r.type.toUpperCase() !== "SMTP" ? `${r.type}:` : "";
        return `${type}${r.address}${r.cost ? `;${r.cost}` : ""}`;
      }),
      SourceTransportServers: servers.values().map((r) => r.server),
    };
    // What is on the form is sent as it is: the API states the rule it breaks.
    if (hosts.length) out.SmartHosts = hosts;
    return out;
  }

  async function submit(event) {
    event.preventDefault();
    if (step === 0 && !name.value.trim()) {
      name.value = "";
      name.reportValidity();
      name.focus();
      return;
    }
    if (step < STEPS.length - 1) {
      error.textContent = "";
      go(step + 1);
      return;
    }
    next.disabled = true;
    try {
      const created = await ctx.api("POST", "/api/connectors", body());
      ctx.navigate("#/connectors", `Send connector '${created.Identity}' created.`);
    } catch (err) {
      error.textContent = "";
      setTimeout(() => { error.textContent = err.message; }, 30);
      const where = stepOf(err);
      if (where !== null) go(where);
    } finally {
      next.disabled = false;
    }
  }

  const form = h("form", { class: "wizard", novalidate: true, onsubmit: submit },
    progress, error, steps,
    h("div", { class: "wizard-buttons" }, back, next, cancel));
  view.append(h("p", { class: "hint" }, "Creates a send connector, like New-SendConnector. " +
    "Enter in a field goes to the next step."), form);
  go(0, false);
  name.focus();
}

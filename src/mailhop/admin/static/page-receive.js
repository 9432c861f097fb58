// Receive connectors (Get-ReceiveConnector): read from the server's configuration file.
import { dataTable, display, fmtBytes, h, yesNo } from "./ui.js";

export default async function render(view, ctx) {
  let connectors;
  try {
    connectors = await ctx.api("GET", "/api/receive-connectors");
  } catch (err) {
    ctx.fail(err);
    return;
  }
  view.append(
    h("p", { class: "hint" }, "Receive connectors come from the [[receive_connectors]] sections of mailhop.toml; " +
      "change them there and restart the server."),
    dataTable({
      caption: `${connectors.length} receive connector${connectors.length === 1 ? "" : "s"}`,
      empty: "No receive connector is configured: this server accepts no mail.",
      columns: [
        { label: "Name", key: "Identity", rowHeader: true },
        { label: "Server", key: "Server" },
        { label: "Bindings", render: (r) => h("span", { class: "mono" }, display(r.Bindings)) },
        { label: "Remote IP ranges", render: (r) => h("span", { class: "mono" }, display(r.RemoteIPRanges)) },
        { label: "FQDN", key: "Fqdn" },
        { label: "Max message size", render: (r) => fmtBytes(r.MaxMessageSize), class: "num" },
        { label: "Max recipients", key: "MaxRecipientsPerMessage", class: "num" },
        { label: "Require TLS", render: (r) => yesNo(r.RequireTLS) },
        { label: "Authentication", key: "AuthMechanism" },
        { label: "TLS certificate", key: "TlsCertificate", class: "wrap" },
        { label: "Protocol logging", key: "ProtocolLoggingLevel" },
      ],
      rows: connectors,
    }));
}

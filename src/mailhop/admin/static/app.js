// The console shell: sign-in, the fetch wrapper, the hash router and the message regions.
import { h } from "./ui.js";

const ROUTES = {
  dashboard: { title: "Dashboard", module: "./page-dashboard.js" },
  connectors: { title: "Send connectors", module: "./page-connectors.js" },
  "connectors/new": { title: "New send connector", module: "./page-wizard.js", nav: "connectors" },
  receive: { title: "Receive connectors", module: "./page-receive.js" },
  queues: { title: "Queues", module: "./page-queues.js" },
  trace: { title: "Message trace", module: "./page-trace.js" },
  headers: { title: "Header analyzer", module: "./page-headers.js" },
  dkim: { title: "DKIM", module: "./page-dkim.js" },
  readiness: { title: "Domain readiness", module: "./page-readiness.js" },
};

const $ = (id) => document.getElementById(id);
let session = null;        // {name, readOnly, csrf}
let generation = 0;        // bumps at each navigation: late answers of a left page are dropped
let cleanups = [];
let flash = null;          // a result to show on the next page (e.g. after the wizard)

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// Message ids are 64-bit integers: beyond 2^53 a JavaScript number would change them,
// so integers that do not fit are kept as their exact decimal text.
const SOURCE_TEXT = (() => {
  let supported = false;
  JSON.parse("1", (key, value, context) => { supported = Boolean(context && "source" in context); return value; });
  return supported;
})();

export function parseJson(text) {
  if (SOURCE_TEXT) {
    return JSON.parse(text, (key, value, context) =>
      (typeof value === "number" && !Number.isSafeInteger(value) && /^-?\d+$/.test(context?.source ?? ""))
        ? context.source : value);
  }
  const quoted = text.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.\deE])/g, (m) => (m[0] === '"' ? m : `"${m}"`));
  return JSON.parse(quoted);
}

// Every API call: same-origin cookie, X-CSRF-Token on changes, {"detail"} errors verbatim.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!["GET", "HEAD"].includes(method) && session?.csrf) headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `The server could not be reached: ${err.message}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? parseJson(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    let detail = data && typeof data.detail === "string" ? data.detail : null;
    if (detail === null) {
      const shown = text && data === null ? `: ${text.slice(0, 300)}` : "";
      detail = `${response.status} ${response.statusText || "error"}${shown}`;
    }
    if (response.status === 401 && path !== "/api/session" && session) signedOut(detail);
    throw new ApiError(response.status, detail);
  }
  return data;
}

// --- the message regions ------------------------------------------------------------------

function say(region, text) {
  // Emptied first so that the same text twice is announced twice.
  region.textContent = "";
  if (text) setTimeout(() => { region.textContent = text; }, 30);
}

export function notify(text) {
  say($("alert"), "");
  say($("status"), text);
}

export function fail(error) {
  say($("status"), "");
  say($("alert"), error instanceof Error ? error.message : String(error));
}

function clearMessages() {
  $("alert").textContent = "";
  $("status").textContent = "";
}

// --- sign-in -----------------------------------------------------------------------------

function showSignIn(message) {
  session = null;
  generation += 1;
  runCleanups();
  $("shell").hidden = true;
  $("signin").hidden = false;
  $("page").replaceChildren();
  say($("signin-error"), message || "");
  $("token").value = "";
  $("token").focus();
}

function signedOut(message) {
  showSignIn(message ? `${message}. Sign in again.` : "");
}

function signedIn(data) {
  session = { name: data.Name, readOnly: Boolean(data.ReadOnly), csrf: data.CsrfToken || null };
  $("signin").hidden = true;
  $("shell").hidden = false;
  $("who").replaceChildren(`Signed in as ${session.name} `,
    h("span", { class: session.readOnly ? "badge ro" : "badge" }, session.readOnly ? "read-only" : "full control"));
  route(true);
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    $("token").reportValidity();
    return;
  }
  try {
    signedIn(await api("POST", "/api/session", { token }));
  } catch (err) {
    say($("signin-error"), err.message);
    $("token").select();
  }
}

async function signOut() {
  try {
    await api("DELETE", "/api/session");
  } catch {
    // Signing out of a session that already ended is still signing out.
  }
  if (location.hash) history.replaceState(null, "", location.pathname);
  showSignIn("");
}

// --- the router --------------------------------------------------------------------------

function runCleanups() {
  for (const fn of cleanups) {
    try { fn(); } catch { /* a page's cleanup never blocks navigation */ }
  }
  cleanups = [];
}

export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { path: path.replace(/\/$/, ""), params: new URLSearchParams(query) };
}

export function navigate(hash, message) {
  flash = message || null;
  if (location.hash === hash) route(false);
  else location.hash = hash;
}

async function route(initial) {
  if (!session) return;
  const { path, params } = parseHash();
  const name = ROUTES[path] ? path : "dashboard";
  const def = ROUTES[name];
  const mine = ++generation;
  runCleanups();
  clearMessages();
  if (flash) {
    notify(flash);
    flash = null;
  }
  for (const link of document.querySelectorAll("nav.side a")) {
    if (link.dataset.route === (def.nav || name)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${def.title} – mailhop`;
  const heading = h("h1", { tabindex: "-1" }, def.title);
  const view = h("section", { "aria-labelledby": "page-title" });
  heading.id = "page-title";
  $("page").replaceChildren(heading, view);
  if (!initial) heading.focus();
  const alive = () => mine === generation;
  const ctx = {
    api, params, session, navigate, alive,
    notify: (text) => { if (alive()) notify(text); },
    fail: (err) => { if (alive()) fail(err); },
    onCleanup: (fn) => cleanups.push(fn),
    setParams: (next) => {
      const query = new URLSearchParams(next).toString();
      history.replaceState(null, "", `#/${name}${query ? `?${query}` : ""}`);
    },
  };
  try {
    const page = await import(def.module);
    if (alive()) await page.default(view, ctx);
  } catch (err) {
    if (alive()) fail(err);
  }
}

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("skip").addEventListener("click", () => $("main").focus());
  window.addEventListener("hashchange", () => route(false));
  try {
    signedIn(await api("GET", "/api/session"));
  } catch (err) {
    showSignIn(err.status === 401 ? "" : err.message);
  }
}

start();

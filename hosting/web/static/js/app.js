// The app's core: strings, DOM building (text only, never HTML), the session and the API.
//
// The access token lives only in this module's memory. The refresh token is in an HttpOnly cookie that
// only POST/DELETE /api/auth/refresh receive; refreshes are serialised across tabs (Web Locks), because a
// refresh token is single-use and reusing a spent one ends the session everywhere.

const strings = JSON.parse(document.getElementById("strings").textContent);
export const lang = document.documentElement.lang;

export function t(key, values = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}

// h("td", {class: "x", on: {click}}, "text", child): every string becomes a text node.
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector) => document.querySelector(selector);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The server's message is English; the page shows ours when it knows the code.
export function errorText(error) {
  if (error instanceof ApiError) {
    const key = `error.${error.code}`;
    const known = t(key, { message: error.message });
    return known === key ? error.message : known;
  }
  return t("error.network");
}

let accessToken = null;
let refreshTimer = null;
export let me = null;

export function bearer() {
  return accessToken;
}

function keep(tokens) {
  accessToken = tokens.access_token;
  clearTimeout(refreshTimer);
  // Renew a minute before it expires, so a page left open keeps working.
  refreshTimer = setTimeout(() => refreshSession(), Math.max(10, tokens.expires_in - 60) * 1000);
}

const SESSION = { "X-MicroPi-Session": "cookie" };

export async function refreshSession() {
  const run = async () => {
    // keepalive: a refresh outlives the page that started it (a quick click elsewhere), so the rotated cookie
    // always lands; a lost one would leave the spent token behind, and its reuse ends the session.
    const response = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: SESSION,
      credentials: "same-origin",
      keepalive: true,
    });
    if (!response.ok) {
      accessToken = null;
      return false;
    }
    keep(await response.json());
    return true;
  };
  return navigator.locks ? navigator.locks.request("micropi-refresh", run) : run();
}

async function readError(response) {
  try {
    const body = await response.json();
    return new ApiError(response.status, body.error.code, body.error.message);
  } catch {
    return new ApiError(response.status, "http_error", response.statusText);
  }
}

// One API call with the bearer token; a 401 gets one refresh and one retry, then the log-in page.
export async function api(method, path, { json, body, headers = {}, raw = false } = {}) {
  const send = () => {
    const all = { ...headers };
    if (accessToken) all.Authorization = `Bearer ${accessToken}`;
    let payload = body;
    if (json !== undefined) {
      all["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    return fetch(path, { method, headers: all, body: payload, credentials: "same-origin" });
  };
  let response;
  try {
    response = await send();
    if (response.status === 401 && accessToken) {
      if (!(await refreshSession())) toLogin();
      response = await send();
    }
  } catch {
    throw new ApiError(0, "network", t("error.network"));
  }
  if (!response.ok) throw await readError(response);
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Log-in, sign-up and password change: the refresh token comes back as the cookie only.
export async function authenticate(path, json, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { ...headers, ...SESSION, "Content-Type": "application/json" },
    body: JSON.stringify(json),
    credentials: "same-origin",
  });
  if (!response.ok) throw await readError(response);
  const result = await response.json();
  keep(result.tokens ?? result);
  return result;
}

function toLogin() {
  const next = location.pathname === "/" ? "" : `?next=${encodeURIComponent(location.pathname)}`;
  location.replace(`/${next}`);
}

// A page behind the log-in: the session from the cookie, the caller's profile, and the common controls.
export async function session({ role = "user" } = {}) {
  if (!(await refreshSession())) {
    toLogin();
    return new Promise(() => {}); // the page is being left
  }
  me = await api("GET", "/api/me");
  if (role === "operator" && me.role !== "operator") {
    location.replace("/home");
    return new Promise(() => {});
  }
  return me;
}

export async function logout() {
  try {
    await fetch("/api/auth/refresh", { method: "DELETE", credentials: "same-origin" });
  } finally {
    accessToken = null;
    location.assign("/");
  }
}

// --- page furniture -------------------------------------------------------------------------------

export function notice(text) {
  const box = $("#notice");
  box.textContent = text ?? "";
  box.hidden = !text;
}

let toastTimer = null;
export function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), 5000);
}

export function showError(target, error) {
  target.textContent = errorText(error);
  target.hidden = false;
}

// A confirmation in the page's <dialog>; resolves true on OK. `extra` is an optional node (e.g. a file input).
export function confirmAction(title, text, { ok = t("confirm"), extra = null } = {}) {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  $("#confirm-extra").replaceChildren(...(extra ? [extra] : []));
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function formatTime(iso) {
  if (!iso) return t("never");
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

export function formatNumber(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

// The service's reasons are English sentences; the known ones are shown in the page's language.
export function reasonText(reason) {
  if (!reason) return "";
  const step = /: (\w+) done$/.exec(reason);
  if (step) return t("reason.step_done", { step: t(`step.${step[1]}`) });
  const key = `reason.${reason}`;
  const known = t(key);
  return known === key ? reason : known;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: t(`status.${status}`) });
}

function setUpChrome() {
  for (const button of document.querySelectorAll(".lang-switch")) {
    button.addEventListener("click", () => {
      document.cookie = `lang=${button.dataset.lang}; Path=/; Max-Age=31536000; SameSite=Strict`;
      const url = new URL(location.href);
      url.searchParams.delete("lang");
      location.replace(url);
    });
  }
  $("#logout")?.addEventListener("click", logout);
}

setUpChrome();

// A table's rows kept by key through live updates: a row is rebuilt only when its item changed, in place,
// and a rebuilt row gets the keyboard focus back on the same button (a person tabbing through the list
// is not thrown back to the top of the page every time a device reports).
export function syncRows(tbody, items, keyOf, build) {
  const old = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
  const keys = items.map((item) => String(keyOf(item)));
  const sameOrder = keys.length === old.size && keys.every((key, i) => tbody.rows[i]?.dataset.key === key);
  const rows = items.map((item, i) => {
    const signature = JSON.stringify(item);
    const existing = old.get(keys[i]);
    if (existing && existing.dataset.signature === signature) return existing;
    const row = build(item);
    row.dataset.key = keys[i];
    row.dataset.signature = signature;
    const focused = existing ? [...existing.querySelectorAll("button")].indexOf(document.activeElement) : -1;
    if (sameOrder && existing) existing.replaceWith(row);
    if (focused >= 0) queueMicrotask(() => row.querySelectorAll("button")[focused]?.focus());
    return row;
  });
  if (!sameOrder) tbody.replaceChildren(...rows);
}

import { $, api, confirmAction, errorText, formatNumber, formatTime, h, session, syncRows, t, toast } from "../app.js";
import { applyDeviceEvent, live } from "../live.js";

await session();
const devices = new Map();
let codeTimer = null;

// A shell word in single quotes: what the owner copies must do exactly what it says.
const quote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

function state(device) {
  if (device.online) return h("span", { class: "badge status-ready" }, t("device.online"));
  if (device.silent) return h("span", { class: "badge status-error" }, t("device.silent"));
  return h("span", { class: "badge status-stopped" }, t("device.offline"));
}

function row(device) {
  const temperature = device.heartbeat?.cpu_temperature;
  return h(
    "tr",
    { class: device.silent && !device.online ? "silent" : "" },
    h("td", {}, h("span", { class: "name" }, device.name), device.in_home_assistant ? h("span", { class: "reason in-ha" }, t("devices.in_ha")) : null),
    h("td", {}, state(device)),
    h("td", {}, formatTime(device.last_seen_at)),
    h("td", {}, temperature == null ? "–" : `${formatNumber(temperature, 1)} °C`),
    h(
      "td",
      { class: "row-actions" },
      h("button", { type: "button", class: "secondary", "aria-label": t("devices.rename_named", { name: device.name }), on: { click: () => rename(devices.get(device.id)) } }, t("devices.rename")),
      h("button", { type: "button", class: "danger", "aria-label": t("devices.revoke_named", { name: device.name }), on: { click: () => revoke(devices.get(device.id)) } }, t("devices.revoke")),
    ),
  );
}

function render() {
  const list = [...devices.values()];
  syncRows($("#devices tbody"), list, (device) => device.id, row);
  $("#no-devices").hidden = list.length > 0;
  $("#devices").hidden = list.length === 0;
}

async function load() {
  const { devices: list } = await api("GET", "/api/devices");
  devices.clear();
  for (const device of list) devices.set(device.id, device);
  render();
}

async function rename(device) {
  const input = h("input", { id: "rename-input", maxlength: 128, value: device.name, required: true });
  const extra = h("div", {}, h("label", { for: "rename-input" }, t("field.device_name")), input);
  const ok = confirmAction(t("devices.rename"), t("devices.rename_text"), { ok: t("save"), extra });
  input.focus();
  input.select();
  if (!(await ok)) return;
  try {
    const renamed = await api("PATCH", `/api/devices/${encodeURIComponent(device.id)}`, { json: { name: input.value } });
    devices.set(renamed.id, renamed);
    render();
    toast(t("devices.renamed"));
  } catch (err) {
    toast(errorText(err));
  }
}

async function revoke(device) {
  if (!(await confirmAction(t("devices.revoke"), t("devices.revoke_text", { name: device.name }), { ok: t("devices.revoke") }))) return;
  try {
    await api("DELETE", `/api/devices/${encodeURIComponent(device.id)}`);
    devices.delete(device.id);
    render();
    toast(t("devices.revoked"));
  } catch (err) {
    toast(errorText(err));
  }
}

$("#pair-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("#device-name").value.trim() || "Raspberry Pi";
  try {
    const { code, expires_in: ttl } = await api("POST", "/api/devices/pairing-codes", { json: { name } });
    $("#code").textContent = code;
    $("#install-command").textContent =
      `sudo bash edge/install.sh --server ${quote(location.origin)} --code ${code} --name ${quote(name)}`;
    $("#pair-command").textContent = `micropi-edge pair ${code} --server ${quote(location.origin)}`;
    $("#pairing").hidden = false;
    const until = Date.now() + ttl * 1000;
    clearInterval(codeTimer);
    const tick = () => {
      const left = Math.max(0, Math.round((until - Date.now()) / 1000));
      $("#code-expiry").textContent = left ? t("devices.code_expires", { minutes: Math.ceil(left / 60) }) : t("devices.code_expired");
      if (!left) clearInterval(codeTimer);
    };
    tick();
    codeTimer = setInterval(tick, 15000);
  } catch (err) {
    toast(errorText(err));
  }
});

$("#copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("#install-command").textContent);
    toast(t("devices.copied"));
  } catch {
    toast(t("devices.copy_failed"));
  }
});

live((kind, data) => {
  if (kind === "open") load();
  if (kind !== "device") return;
  applyDeviceEvent(devices, data);
  const { action, device } = data;
  if (action === "paired") {
    $("#pairing").hidden = true;
    clearInterval(codeTimer);
    toast(t("devices.paired", { name: device.name }));
  }
  render();
});

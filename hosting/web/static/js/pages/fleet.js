import { $, api, errorText, formatNumber, formatTime, h, session, t, toast } from "../app.js";
import { applyDeviceEvent, live } from "../live.js";
import { ownersById } from "../operator.js";

await session({ role: "operator" });
const devices = new Map();
let owners = new Map();

function render() {
  const list = [...devices.values()];
  $("#fleet tbody").replaceChildren(
    ...list.map((device) => {
      const beat = device.heartbeat ?? {};
      const silent = device.silent && !device.online;
      const state = device.online ? t("device.online") : silent ? t("device.silent") : t("device.offline");
      return h(
        "tr",
        { "data-id": device.id, class: silent ? "silent" : "" },
        h("td", {}, device.name),
        h("td", {}, owners.get(device.user_id) ?? "–"),
        h("td", {}, h("span", { class: `badge ${device.online ? "status-ready" : silent ? "status-error" : "status-stopped"}` }, state)),
        h("td", {}, beat.version || "–"),
        h("td", {}, beat.cpu_temperature == null ? "–" : `${formatNumber(beat.cpu_temperature, 1)} °C`),
        h("td", {}, formatNumber(beat.load, 2)),
        h("td", {}, beat.relay_rtt == null ? "–" : `${formatNumber(beat.relay_rtt * 1000, 0)} ms`),
        h("td", {}, formatTime(device.last_seen_at)),
      );
    }),
  );
  $("#no-fleet").hidden = list.length > 0;
}

async function load() {
  try {
    const [{ devices: list }, byId] = await Promise.all([api("GET", "/api/operator/devices"), ownersById()]);
    owners = byId;
    devices.clear();
    for (const device of list) devices.set(device.id, device);
    render();
  } catch (err) {
    if (err.status === 404) $("#fleet-missing").hidden = false;
    else toast(errorText(err));
  }
}

live((kind, data) => {
  if (kind === "open") load();
  if (kind !== "device") return;
  applyDeviceEvent(devices, data);
  render();
});

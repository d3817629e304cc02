import { $, api, confirmAction, errorText, h, reasonText, session, statusBadge, syncRows, t, toast } from "../app.js";
import { live } from "../live.js";
import { ownersById } from "../operator.js";

await session({ role: "operator" });
const instances = new Map();
let owners = new Map();

const current = (instance) => instances.get(instance.id) ?? instance;
const path = (instance, action = "") => `/api/operator/instances/${encodeURIComponent(instance.id)}${action}`;

async function operate(instance, action) {
  const title = t(`action.${action}`);
  const text = t(`action.${action}_confirm`, { name: instance.name, owner: owners.get(instance.user_id) ?? "" });
  if (!(await confirmAction(title, text, { ok: title }))) return;
  try {
    const changed = await api("POST", path(instance, `/${action}`));
    instances.set(changed.id, changed);
    render();
    toast(t("action.done", { action: title, name: instance.name }));
  } catch (err) {
    toast(errorText(err));
  }
}

async function backup(instance) {
  const title = t("action.backup");
  if (!(await confirmAction(title, t("action.backup_confirm", { name: instance.name }), { ok: title }))) return;
  try {
    const response = await api("GET", path(instance, "/backup"), { raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: `${instance.name}.tar.gz`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    toast(t("action.backup_done", { name: instance.name }));
  } catch (err) {
    toast(errorText(err));
  }
}

async function restore(instance) {
  const input = h("input", { id: "restore-file", type: "file", accept: ".tar.gz,application/gzip", required: true });
  const extra = h("div", {}, h("label", { for: "restore-file" }, t("action.restore_file")), input);
  const title = t("action.restore");
  if (!(await confirmAction(title, t("action.restore_confirm", { name: instance.name }), { ok: title, extra }))) return;
  const file = input.files[0];
  if (!file) return toast(t("action.restore_nofile"));
  try {
    const changed = await api("POST", path(instance, "/restore"), { body: file, headers: { "Content-Type": "application/gzip" } });
    instances.set(changed.id, changed);
    render();
    toast(t("action.done", { action: title, name: instance.name }));
  } catch (err) {
    toast(errorText(err));
  }
}

function actions(instance) {
  const button = (action, fn, style = "secondary") =>
    h("button", { type: "button", class: style, "aria-label": `${t(`action.${action}`)}: ${instance.name}`, on: { click: fn } }, t(`action.${action}`));
  return h(
    "td",
    { class: "row-actions" },
    // The instance as it is when clicked (live updates may have changed it since the row was drawn).
    button("start", () => operate(current(instance), "start")),
    button("stop", () => operate(current(instance), "stop")),
    button("restart", () => operate(current(instance), "restart")),
    button("upgrade", () => operate(current(instance), "upgrade")),
    button("backup", () => backup(current(instance))),
    button("restore", () => restore(current(instance)), "danger"),
  );
}

function render() {
  const list = [...instances.values()].map((instance) => ({ ...instance, owner: owners.get(instance.user_id) ?? "–" }));
  syncRows($("#instances tbody"), list, (instance) => instance.id, (instance) =>
    h(
      "tr",
      { "data-user": instance.user_id },
      h("td", { class: "nowrap" }, instance.name),
      h("td", {}, instance.owner),
      h("td", {}, statusBadge(instance.status), instance.status_reason ? h("span", { class: "reason" }, reasonText(instance.status_reason)) : null),
      h("td", {}, instance.health),
      h("td", {}, String(instance.port)),
      h("td", { class: "mono nowrap" }, instance.image),
      actions(instance),
    ),
  );
  $("#no-instances").hidden = list.length > 0;
}

async function load() {
  try {
    const [{ instances: list }, byId] = await Promise.all([api("GET", "/api/operator/instances"), ownersById()]);
    owners = byId;
    instances.clear();
    for (const instance of list) instances.set(instance.id, instance);
    render();
  } catch (err) {
    toast(errorText(err));
  }
}

live((kind, data) => {
  if (kind === "open" || kind === "signup") load();
  else if ((kind === "instance" || kind === "provisioning") && data?.id) {
    instances.set(data.id, data);
    render();
  }
});

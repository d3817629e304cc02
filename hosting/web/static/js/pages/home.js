import { $, api, confirmAction, errorText, h, notice, reasonText, session, t, toast } from "../app.js";
import { live } from "../live.js";

await session();
const phases = [...document.querySelectorAll("#steps li")].map((li) => li.dataset.step);

// How far provisioning is, from the instance's reason ("setting up Home Assistant: <step> done"): the
// steps run in order, so everything up to the named one is done; the start counts once HA answers.
function phasesDone(instance) {
  const reason = instance.status_reason ?? "";
  const step = /: (\w+) done$/.exec(reason);
  if (step) return phases.indexOf(step[1]) + 1;
  return reason.startsWith("setting up") ? 1 : 0;
}

function show(instance) {
  $("#status").replaceWith(h("span", { id: "status", class: `badge status-${instance.status}` }, t(`status.${instance.status}`)));
  $("#reason").textContent = instance.status === "ready" ? "" : reasonText(instance.status_reason);
  const open = $("#open-ha");
  const ready = instance.status === "ready";
  open.href = ready ? instance.url : "#";
  open.setAttribute("aria-disabled", String(!ready));
  open.classList.toggle("disabled", !ready);
  $("#restart").disabled = !["ready", "error"].includes(instance.status);
  $("#progress-box").hidden = instance.status !== "provisioning";
  const done = phasesDone(instance);
  $("#progress").value = done + 0.5; // the phase under way shows as begun
  document.querySelectorAll("#steps li").forEach((li, index) => {
    li.classList.toggle("done", index < done);
    if (index === done) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  });
}

async function load() {
  try {
    show(await api("GET", "/api/me/instance"));
    notice("");
  } catch (err) {
    $("#status").textContent = "–";
    if (err.code === "no_instance") notice(t("home.no_instance"));
    else notice(errorText(err));
  }
}

$("#open-ha").addEventListener("click", (event) => {
  if ($("#open-ha").getAttribute("aria-disabled") === "true") event.preventDefault();
});

$("#restart").addEventListener("click", async () => {
  if (!(await confirmAction(t("home.restart"), t("home.restart_confirm"), { ok: t("home.restart") }))) return;
  try {
    show(await api("POST", "/api/me/instance/restart"));
    toast(t("home.restarting"));
  } catch (err) {
    toast(errorText(err));
  }
});

live((kind, data) => {
  if (kind === "open") load();
  else if (kind === "instance") show(data);
  else if (kind === "provisioning") show(data);
});

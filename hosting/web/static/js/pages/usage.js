import { $, api, confirmAction, errorText, formatNumber, formatTime, h, session, t, toast } from "../app.js";

await session();
const PAGE = 20;
let shown = 0;

function figure(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, formatNumber(value)));
}

async function loadUsage() {
  try {
    const usage = await api("GET", "/api/me/usage");
    $("#usage").replaceChildren(
      figure(t("usage.local"), usage.questions?.local ?? 0),
      figure(t("usage.model"), usage.questions?.model ?? 0),
      figure(t("usage.requests"), usage.model_requests ?? 0),
      figure(t("usage.tokens"), (usage.prompt_tokens ?? 0) + (usage.eval_tokens ?? 0)),
    );
  } catch (err) {
    if (err.status === 404) $("#usage-missing").hidden = false;
    else toast(errorText(err));
  }
}

function row(item) {
  const by = item.handled === "local" || item.handled === true ? t("usage.by_local") : t("usage.by_model");
  return h(
    "tr",
    { "data-id": item.id },
    h("td", {}, formatTime(item.time)),
    h("td", {}, item.device ?? "–"),
    h("td", { class: "text" }, item.text ?? ""),
    h("td", {}, by),
    h("td", {}, h("button", { type: "button", class: "danger", "aria-label": t("usage.delete_one_named", { text: item.text ?? "" }), on: { click: () => remove(item) } }, t("delete"))),
  );
}

async function loadConversations(reset = true) {
  if (reset) shown = 0;
  try {
    const { items, total } = await api("GET", `/api/me/conversations?limit=${PAGE}&offset=${shown}`);
    const body = $("#conversations tbody");
    if (reset) body.replaceChildren();
    body.append(...items.map(row));
    shown += items.length;
    $("#no-conversations").hidden = total > 0;
    $("#older").hidden = shown >= total;
    $("#delete-all").hidden = total === 0;
  } catch (err) {
    if (err.status === 404) {
      $("#conversations-missing").hidden = false;
      $("#conversations").hidden = true;
    } else toast(errorText(err));
  }
}

async function remove(item) {
  if (!(await confirmAction(t("delete"), t("usage.delete_one"), { ok: t("delete") }))) return;
  try {
    await api("DELETE", `/api/me/conversations/${encodeURIComponent(item.id)}`);
    await loadConversations();
  } catch (err) {
    toast(errorText(err));
  }
}

$("#older").addEventListener("click", () => loadConversations(false));
$("#delete-all").addEventListener("click", async () => {
  if (!(await confirmAction(t("usage.delete_all"), t("usage.delete_all_text"), { ok: t("delete") }))) return;
  try {
    await api("DELETE", "/api/me/conversations");
    await loadConversations();
  } catch (err) {
    toast(errorText(err));
  }
});

await Promise.all([loadUsage(), loadConversations()]);

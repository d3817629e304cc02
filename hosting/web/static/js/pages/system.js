import { $, api, errorText, formatNumber, h, session, t, toast } from "../app.js";

await session({ role: "operator" });

async function backends() {
  try {
    const { backends: list } = await api("GET", "/api/operator/gateway/backends");
    $("#backends tbody").replaceChildren(
      ...list.map((b) =>
        h(
          "tr",
          { class: b.healthy ? "" : "silent" },
          h("td", { class: "mono" }, b.url),
          h("td", {}, h("span", { class: `badge ${b.healthy ? "status-ready" : "status-error"}` }, t(b.healthy ? "health.ok" : "health.down"))),
          h("td", {}, formatNumber(b.in_flight)),
          h("td", {}, formatNumber(b.queued)),
          h("td", {}, formatNumber(b.tokens_per_second, 1)),
          h("td", {}, (b.models ?? []).join(", ")),
        ),
      ),
    );
  } catch (err) {
    if (err.status === 404) {
      $("#backends-missing").hidden = false;
      $("#backends").hidden = true;
    } else toast(errorText(err));
  }
}

async function orphans() {
  try {
    const { orphans: list } = await api("GET", "/api/operator/orphans");
    $("#orphans tbody").replaceChildren(
      ...list.map((o) =>
        h(
          "tr",
          {},
          h("td", { class: "mono" }, o.name),
          h("td", {}, o.state),
          h("td", { class: "mono" }, Object.entries(o.labels).map(([k, v]) => `${k}=${v}`).join(" ")),
        ),
      ),
    );
    $("#no-orphans").hidden = list.length > 0;
    $("#orphans").hidden = list.length === 0;
  } catch (err) {
    $("#orphans-missing").textContent = errorText(err);
    $("#orphans-missing").hidden = false;
    $("#orphans").hidden = true;
  }
}

async function health() {
  try {
    const response = await fetch("/health");
    const report = await response.json();
    const item = (label, ok, detail) => [h("dt", {}, label), h("dd", {}, h("span", { class: `badge ${ok ? "status-ready" : "status-error"}` }, t(ok ? "health.ok" : "health.down")), " ", detail ?? "")];
    $("#health").replaceChildren(
      ...item(t("system.service"), report.status === "ok", report.version),
      ...item(t("system.database"), report.database?.ok, report.database?.detail),
      ...item(t("system.runtime"), report.runtime?.ok, report.runtime?.detail),
    );
  } catch (err) {
    toast(errorText(err));
  }
}

await Promise.all([backends(), orphans(), health()]);

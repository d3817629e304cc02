import { $, api, errorText, formatTime, h, session, statusBadge, t, toast } from "../app.js";
import { live } from "../live.js";

await session({ role: "operator" });
const PAGE = 20;
let offset = 0;
let query = "";

async function load() {
  try {
    const params = new URLSearchParams({ limit: PAGE, offset });
    if (query) params.set("q", query);
    const [{ users, total }, { instances }] = await Promise.all([
      api("GET", `/api/operator/users?${params}`),
      api("GET", "/api/operator/instances"),
    ]);
    const status = new Map(instances.map((i) => [i.user_id, i.status]));
    $("#users tbody").replaceChildren(
      ...users.map((user) =>
        h(
          "tr",
          {},
          h("td", {}, user.email),
          h("td", {}, t(`role.${user.role}`)),
          h("td", {}, formatTime(user.created_at)),
          h("td", {}, status.has(user.id) ? statusBadge(status.get(user.id)) : "–"),
        ),
      ),
    );
    $("#users-count").textContent = t("users.count", { total });
    $("#page-info").textContent = total
      ? t("pager.info", { from: offset + 1, to: offset + users.length, total })
      : t("users.none");
    $("#prev").disabled = offset === 0;
    $("#next").disabled = offset + users.length >= total;
  } catch (err) {
    toast(errorText(err));
  }
}

$("#search").addEventListener("submit", (event) => {
  event.preventDefault();
  query = $("#q").value.trim();
  offset = 0;
  load();
});
$("#prev").addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE);
  load();
});
$("#next").addEventListener("click", () => {
  offset += PAGE;
  load();
});

live((kind) => {
  if (kind === "open" || kind === "signup" || kind === "instance") load();
});

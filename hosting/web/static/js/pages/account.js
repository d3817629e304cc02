import { $, authenticate, api, bearer, confirmAction, session, showError, t, toast } from "../app.js";
import { watchStrength } from "../strength.js";

const me = await session();
$("#me-email").textContent = me.email;
watchStrength($("#new_password"), $("#strength"), $("#strength-text"));

$("#password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#password-error");
  error.hidden = true;
  try {
    // The same call as any other, plus the session header so the new refresh token goes to the cookie.
    await authenticate("/api/me/password", {
      current_password: $("#current_password").value,
      new_password: $("#new_password").value,
    }, { Authorization: `Bearer ${bearer()}` });
    event.target.reset();
    toast(t("account.changed"));
  } catch (err) {
    showError(error, err);
  }
});

$("#delete-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#delete-error");
  error.hidden = true;
  if (!(await confirmAction(t("account.delete"), t("account.delete_confirm"), { ok: t("account.delete_submit") }))) return;
  try {
    await api("DELETE", "/api/me", { json: { password: $("#delete_password").value } });
    location.assign("/?deleted=1");
  } catch (err) {
    showError(error, err);
  }
});

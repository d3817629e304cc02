import { $, api, authenticate, notice, refreshSession, showError, t } from "../app.js";

if (new URLSearchParams(location.search).has("deleted")) notice(t("login.deleted"));

function destination(role) {
  const next = new URLSearchParams(location.search).get("next");
  // Only a path of ours: never an absolute URL somebody put in the link.
  if (next && /^\/[A-Za-z0-9/_-]*$/.test(next)) return next;
  return role === "operator" ? "/operator" : "/home";
}

// Already signed in (the session cookie works): straight on.
if (await refreshSession()) {
  const me = await api("GET", "/api/me");
  location.replace(destination(me.role));
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#login-error");
  error.hidden = true;
  const button = event.submitter;
  button.disabled = true;
  try {
    await authenticate("/api/auth/login", { email: $("#email").value, password: $("#password").value });
    const me = await api("GET", "/api/me");
    location.assign(destination(me.role));
  } catch (err) {
    showError(error, err);
    button.disabled = false;
  }
});

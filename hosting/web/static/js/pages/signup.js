import { $, authenticate, h, showError } from "../app.js";
import { watchStrength } from "../strength.js";

watchStrength($("#password"), $("#strength"), $("#strength-text"));

// The browser's own time zone, chosen in the list of every zone it knows.
const detected = Intl.DateTimeFormat().resolvedOptions().timeZone || "Europe/Budapest";
const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [detected];
if (!zones.includes(detected)) zones.unshift(detected);
$("#time_zone").replaceChildren(...zones.map((zone) => h("option", { value: zone, selected: zone === detected }, zone)));

$("#signup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#signup-error");
  error.hidden = true;
  const button = event.submitter;
  button.disabled = true;
  const body = {
    email: $("#email").value,
    password: $("#password").value,
    time_zone: $("#time_zone").value,
    demo: $("#demo").checked, // shown ticked when the service's default is the demo home
  };
  try {
    await authenticate("/api/auth/signup", body);
    location.assign("/home");
  } catch (err) {
    showError(error, err);
    button.disabled = false;
  }
});

// The browser's one live-update stream: server-sent events over fetch (so the bearer token goes in a
// header, never in the URL). Of the app's open tabs one holds the stream (a Web Lock elects it) and passes
// every event on to the others over a BroadcastChannel; when it closes, another tab takes the lock and the
// stream over. Reconnects with backoff; `onEvent("open")` after each (re)connect lets every page reload
// what it shows, since events sent while no stream was open are gone.
import { bearer, refreshSession } from "./app.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parse(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const [field, ...rest] = line.split(":");
    const value = rest.join(":").replace(/^ /, "");
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { kind, data: JSON.parse(data.join("\n")) } : null;
}

export function live(onEvent) {
  if (!navigator.locks || !("BroadcastChannel" in window)) return stream(onEvent);
  const channel = new BroadcastChannel("micropi-live");
  channel.addEventListener("message", (message) => onEvent(message.data.kind, message.data.data));
  onEvent("open", null); // this page's first load; the stream's holder tells of every (re)connect after it
  document.body.dataset.live = "shared";
  navigator.locks.request("micropi-live", () =>
    stream((kind, data) => {
      onEvent(kind, data);
      channel.postMessage({ kind, data });
    }),
  );
}

// The stream itself, in the tab that holds it; never ends (the lock is held as long as this tab lives).
function stream(onEvent) {
  let delay = 1000;
  return (async () => {
    for (;;) {
      try {
        const response = await fetch("/api/events", {
          headers: { Authorization: `Bearer ${bearer()}`, Accept: "text/event-stream" },
          cache: "no-store",
        });
        if (response.status === 401) {
          if (await refreshSession()) continue;
          location.replace("/"); // the session has ended
          return;
        }
        if (!response.ok) throw new Error(`events: ${response.status}`);
        delay = 1000;
        onEvent("open", null);
        document.body.dataset.live = "open";
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = (buffer + value).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event) onEvent(event.kind, event.data);
          }
        }
      } catch {
        // the network went away: try again below
      }
      document.body.dataset.live = "closed";
      await sleep(delay);
      delay = Math.min(delay * 2, 30000);
      if (!bearer()) await refreshSession();
    }
  })();
}

// A `device` event applied to a page's devices (by id): revoked ones go, online/offline flips the flag,
// anything else (paired, renamed, a report) brings the device's whole current view.
export function applyDeviceEvent(devices, { action, device }) {
  if (action === "revoked") devices.delete(device.id);
  else if (action === "online" || action === "offline") {
    const known = devices.get(device.id);
    if (known) devices.set(device.id, { ...known, online: action === "online", silent: false });
  } else devices.set(device.id, device);
}

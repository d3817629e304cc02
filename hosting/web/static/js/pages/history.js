import { $, api, errorText, session, toast } from "../app.js";
import { drawChart } from "../chart.js";

await session({ role: "operator" });
const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "1y": 365 * 86400e3 };

async function load() {
  const range = $("#range").value;
  const figures = [...document.querySelectorAll(".chart")];
  const names = figures.flatMap((figure) => figure.dataset.series.split(","));
  try {
    const { series } = await api("GET", `/api/operator/history?range=${range}&series=${names.join(",")}`);
    for (const figure of figures) {
      const own = Object.fromEntries(figure.dataset.series.split(",").map((name) => [name, series[name] ?? []]));
      drawChart(figure, own, RANGES[range]);
    }
  } catch (err) {
    toast(errorText(err));
  }
}

$("#range").addEventListener("change", load);
load();
// A new sample is written every history interval; redraw now and then rather than on every event.
setInterval(load, 30000);

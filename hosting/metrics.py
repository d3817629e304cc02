"""Prometheus metrics of the hosting service, served at `/metrics`.

They live in the service's own registry (not prometheus-client's global one), so several applications in
one process (tests) do not collide. Request metrics are observed by `hosting.middleware`;
`PROVISIONING_SECONDS` by `hosting.instances`; the instance gauges are refreshed from the database at each
scrape, the device gauges by `hosting.devices` (heartbeats and its monitoring loop).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

REQUEST_SECONDS = Histogram(
    "micropi_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template (not the raw path, to bound cardinality).",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_STREAMS = Gauge("micropi_event_streams", "Live-update (server-sent event) streams open now.", registry=REGISTRY)
INSTANCES = Gauge("micropi_instances", "Home Assistant instances by status.", ["status"], registry=REGISTRY)
PROVISIONING_SECONDS = Histogram(
    "micropi_provisioning_duration_seconds",
    "Time from sign-up to a ready, onboarded HA (observed once per successful provisioning).",
    ["runtime"],
    registry=REGISTRY,
    buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
PROVISIONING_FAILURES = Counter(
    "micropi_provisioning_failures", "Provisioning attempts that ended in an error.", ["runtime"], registry=REGISTRY
)
FREE_PORTS = Gauge(
    "micropi_free_ports", "Ports of the instance port pool not allocated to any instance.", registry=REGISTRY
)
# Set by hosting.reconcile: labelled containers/processes with no instance row (reported, never deleted).
ORPHAN_INSTANCES = Gauge(
    "micropi_orphan_instances",
    "Runtime instances carrying MicroPi's labels that no database row owns.",
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "micropi_rate_limited_requests", "Requests refused by a rate limit.", ["limit"], registry=REGISTRY
)


# Edge devices (hosting.devices).
DEVICES = Gauge("micropi_devices", "Paired, unrevoked devices by state.", ["state"], registry=REGISTRY)
DEVICE_SECONDS_SINCE_SEEN = Gauge(
    "micropi_device_seconds_since_seen", "Seconds since the device's last heartbeat.", ["device_id"], registry=REGISTRY
)
DEVICE_CPU_TEMPERATURE = Gauge(
    "micropi_device_cpu_temperature_celsius",
    "CPU temperature reported by the device.",
    ["device_id"],
    registry=REGISTRY,
)
DEVICE_LOAD = Gauge("micropi_device_load1", "1-minute load average of the device.", ["device_id"], registry=REGISTRY)
DEVICE_UPTIME = Gauge("micropi_device_uptime_seconds", "Uptime of the device agent.", ["device_id"], registry=REGISTRY)
DEVICE_RELAY_RTT = Gauge(
    "micropi_device_relay_rtt_seconds", "Relay round trip measured by the device.", ["device_id"], registry=REGISTRY
)
PER_DEVICE_GAUGES = (DEVICE_SECONDS_SINCE_SEEN, DEVICE_CPU_TEMPERATURE, DEVICE_LOAD, DEVICE_UPTIME, DEVICE_RELAY_RTT)
RELAY_TUNNELS = Gauge("micropi_relay_active_tunnels", "HA connections spliced to devices now.", registry=REGISTRY)
RELAY_IDLE = Gauge("micropi_relay_idle_connections", "Idle device WebSockets held open.", registry=REGISTRY)


_REQUEST_CHILDREN: dict[tuple[str, str, int], Any] = {}


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    resource = request.match_info.route.resource
    # The route template, never the raw path: ids in paths would make unbounded label sets.
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in _KNOWN_METHODS else "other"  # any token is a method
    key = (method, route, status)
    child = _REQUEST_CHILDREN.get(key)
    if child is None:  # `labels()` takes a lock and builds a tuple each time; the set of keys is small
        child = _REQUEST_CHILDREN[key] = REQUEST_SECONDS.labels(method, route, str(status))
    child.observe(seconds)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def exposition() -> bytes:
    return generate_latest(REGISTRY)

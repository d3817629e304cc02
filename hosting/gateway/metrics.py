"""The gateway's Prometheus metrics (in the service's registry). Aggregated only: never a tenant label, whose
values would be unbounded; models are the operator's allow-list and back-ends the configured URLs."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from hosting.metrics import REGISTRY

GATEWAY_REQUESTS = Counter(
    "micropi_gateway_requests",
    "Model requests through the gateway, by endpoint and outcome.",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
GATEWAY_TOKENS = Counter(
    "micropi_gateway_tokens", "Tokens processed, by kind (prompt, eval).", ["kind"], registry=REGISTRY
)
GATEWAY_FIRST_CHUNK_SECONDS = Histogram(
    "micropi_gateway_first_chunk_seconds",
    "Time from the request to the first streamed chunk (queueing included).",
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30),
)
GATEWAY_REQUEST_SECONDS = Histogram(
    "micropi_gateway_request_duration_seconds",
    "Time to answer a model request whole.",
    registry=REGISTRY,
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
GATEWAY_QUEUE_SECONDS = Histogram(
    "micropi_gateway_queue_seconds",
    "Time a request waited for a back-end slot.",
    registry=REGISTRY,
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
GATEWAY_WAITING = Gauge("micropi_gateway_waiting_requests", "Requests waiting for a back-end slot.", registry=REGISTRY)
GATEWAY_BACKEND_IN_FLIGHT = Gauge(
    "micropi_gateway_backend_in_flight", "Requests running on each back-end.", ["backend"], registry=REGISTRY
)
GATEWAY_BACKEND_UP = Gauge(
    "micropi_gateway_backend_up", "1 when the back-end passed its last health check.", ["backend"], registry=REGISTRY
)
GATEWAY_LIMITED = Counter(
    "micropi_gateway_limited_requests", "Requests refused by a per-tenant limit.", ["limit"], registry=REGISTRY
)
SPEECH_CONNECTIONS = Gauge(
    "micropi_speech_connections",
    "Speech (Wyoming) connections proxied now, by service.",
    ["service"],
    registry=REGISTRY,
)

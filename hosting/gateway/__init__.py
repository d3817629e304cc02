"""The MicroPi gateway: the one authenticated, limited door from a tenant's HA to the shared Ollama servers
(and, in `hosting.gateway.speech`, to whisper and piper).

Where it runs: inside the hosting service's process, as its own aiohttp application on its own listeners
(`Gateway.open_site`), not on the public API's port. Why: fair sharing needs ONE view of every back-end
slot and every tenant's queue, and per-tenant limits need one count; in one process that is a few dicts,
across processes it would be a shared store on the hot path of every token. The work is I/O (the GPU is
the bottleneck: one box serves tens of streams, which one event loop relays with little CPU, see
bench/gateway_fairness.py for the added latency), and the service already owns the tenants, the tokens and
the per-tenant networks the listeners bind to.

Map:
- `settings`: `GatewaySettings` / `TenantLimits` from `MICROPI_*`;
- `tokens`: per-instance tokens (Fernet at rest, SHA-256 lookup, rotation) and `TenantDirectory`;
- `backends`: the Ollama servers, health checks, models, speed;
- `scheduler`: per-tenant round-robin queues over the back-end slots;
- `limits`: concurrency, requests per minute, tokens per day;
- `service`: `Gateway`, the proxy itself (auth, allow-list, clamps, streaming, failover);
- `speech`: per-tenant TCP endpoints in front of whisper and piper;
- `usage`: metering rollups and the conversation log in the database; `turns`: the integration's reports;
- `setup`: the gateway inside the service (listeners per runtime, URLs for provisioning);
- `metrics`: aggregated Prometheus metrics (never a tenant label).
"""

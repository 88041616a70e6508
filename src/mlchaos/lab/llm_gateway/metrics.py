"""The gateway's Prometheus metrics: what a chaos experiment (or an operator) reads to see which defence acted.

In the process's default registry, beside the lab's common request metrics
(:mod:`mlchaos.lab.observability`), so one ``GET /metrics`` shows both.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "mlchaos_llm_gateway_requests_total",
    "Requests by the backend that finished them (none: no backend did) and outcome "
    "(ok, resumed, rejected, error, timeout, broken, client_error).",
    ["backend", "outcome"],
)
ATTEMPTS = Counter(
    "mlchaos_llm_gateway_backend_attempts_total", "Requests sent to a backend (retries and resumes included).",
    ["backend"],
)
FALLBACKS = Counter(
    "mlchaos_llm_gateway_fallbacks_total",
    "Requests moved to another backend, by the backend left, the one taken and why "
    "(ttft_timeout, status, connect, stalled, cut, error_event, malformed, unready).",
    ["source", "target", "reason"],
)
RETRIES = Counter(
    "mlchaos_llm_gateway_retries_total", "Immediate retries on the same backend (naive blind retries).", ["backend"]
)
RESUMES = Counter(
    "mlchaos_llm_gateway_resumes_total",
    "Broken streams continued on a backend with the text generated so far appended to the request.",
    ["backend"],
)
TIMEOUTS = Counter(
    "mlchaos_llm_gateway_timeouts_total", "Timeouts by backend and kind (ttft, chunk, deadline).",
    ["backend", "kind"],
)
REJECTED = Counter(
    "mlchaos_llm_gateway_rejected_total", "Requests answered 429 by admission control, by reason (queue_full, queue_timeout).",
    ["reason"],
)
QUEUE_DEPTH = Gauge("mlchaos_llm_gateway_queue_depth", "Requests waiting for a slot (admission control).")
IN_FLIGHT = Gauge("mlchaos_llm_gateway_in_flight", "Requests being served by a backend now.")
BACKEND_READY = Gauge(
    "mlchaos_llm_gateway_backend_ready", "1 while the backend's last canary generation streamed a token in time.",
    ["backend"],
)
CANARY_SECONDS = Histogram(
    "mlchaos_llm_gateway_canary_ttft_seconds", "Time to the first token of canary generations.", ["backend"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)

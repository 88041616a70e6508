"""The lab's LLM gateway: an OpenAI-compatible front for a primary and a fallback engine.

Split by concept: :mod:`.policy` (what the naive and the mitigated variants
do: timeouts, fallback, retries, admission), :mod:`.sse` (reading a backend's
event stream one event at a time), :mod:`.relay` (one request across its
attempts), :mod:`.canary` (readiness by canary generation), :mod:`.metrics`.
The process (FastAPI app, flags, ``main``) is
:mod:`mlchaos.lab.services.llm_gateway`.
"""

"""SGLang 0.5.23-compatible emulator of a DeepSeek-R1 engine, for development and tests.

It replays recorded reasoning traces through the same wire format as SGLang with
``--reasoning-parser deepseek-r1`` (``research/sglang.md`` §1-§2) and can inject faults.

Run::

    python -m inference.emulator --host 127.0.0.1 --port 30000 --ttft-ms 400 --tps 60 \\
        [--corpus ../shared/fixtures/r1-traces/gsm8k.jsonl ...] [--api-key KEY] \\
        [--enable-metrics] [--chunk-shape 0.5.23|0.5.10] [--fault "drop after=5"] \\
        [--served-model-name NAME] [--context-length N] [--startup-delay SECONDS]

In-process (tests)::

    app = create_app(EmulatorConfig(tokens_per_second=0, ttft_ms=0))
    httpx.AsyncClient(transport=httpx.ASGITransport(app))  # buffers whole responses
    # or serve it with uvicorn on a free port for real streaming / abort / stall tests

Endpoints (as SGLang): ``POST /v1/chat/completions`` (stream and non-stream),
``POST /abort_request`` (prefix match on active rids, always 200), ``GET /health`` and
``/health_generate`` (503 during the startup delay), ``GET /v1/models``,
``/model_info`` (+``/get_model_info``), ``/server_info`` (+``/get_server_info``),
``GET /metrics`` (Prometheus text, only with ``--enable-metrics``; else 404). With
``--api-key`` every route except ``/health*``, ``/ready``, ``/metrics`` and
``/emulator/*`` needs ``Authorization: Bearer KEY`` (else 401 ``{"error":"Unauthorized"}``).

Trace selection: the last user message (directives removed, whitespace normalised) is
matched exactly against each record's ``question``/``prompt``; otherwise the trace is
``sha256(message) mod len(corpus)``. Records are JSON Lines with ``reasoning``,
``answer`` (may be empty: a short answer is synthesised from the reasoning's
``**Final Answer**`` tail or last ``\\boxed{}``), ``question`` or ``prompt``, optional
``id``. The output is ``reasoning + "\\n</think>\\n\\n" + answer``, cut to ``max_tokens``.

Fault injection, per request. Sources, later ones overriding earlier ones:

1. ``--fault`` / ``EmulatorConfig.fault`` (the default for every request);
2. ``POST /emulator/faults {"fault": "drop", "after": 5, "count": N}``: the next N chat
   requests get it (``{"fault": "unhealthy", "count": N}`` fails the next N health probes);
3. header ``X-Emulator: fault=stall after=3`` (or a JSON object);
4. body field ``"emulator": {"fault": "refuse"}``;
5. a directive anywhere in the LAST user message: ``[[emulator fault=drop after=5]]``
   (removed before trace selection, so the same question still picks the same trace).

Keys: ``fault`` (below), ``after`` (tokens before the fault fires, default 20),
``tps``, ``ttft_ms``, ``factor`` (slow_start multiplier, default 10), ``trace`` (corpus
id to force), ``message`` (error text). Faults:

- ``refuse``: HTTP 503 flat ``ErrorResponse`` before the stream;
- ``bad_request``: HTTP 400 before the stream;
- ``mid_stream_error``: after ``after`` tokens, SGLang's mid-stream error event
  (``SERVICE_UNAVAILABLE``/503), the usage chunk if requested, then ``[DONE]``;
- ``drop``: close the connection after ``after`` tokens, without ``[DONE]``;
- ``stall``: stop sending after ``after`` tokens and hang until the client leaves
  (or the rid is aborted);
- ``slow_start``: time to first token multiplied by ``factor`` (or set by ``ttft_ms``);
- ``malformed``: one garbage non-JSON ``data:`` line after ``after`` tokens.

Test controls: ``GET /emulator/stats`` → ``{"requests", "active_rids", "aborted_rids",
"completed", "disconnected", "queued_faults", "last_request"}``;
``POST /emulator/reset`` clears counters and queued faults.
"""

from inference.emulator.app import create_app
from inference.emulator.config import EmulatorConfig, FaultSpec

__all__ = ["EmulatorConfig", "FaultSpec", "create_app"]

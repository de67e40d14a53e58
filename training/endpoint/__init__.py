"""The client of ``asclepius data`` and ``asclepius judge`` for OpenAI-compatible endpoints, by concern.

- ``settings``: ``ChatSettings`` (``EndpointSettings`` of app.core.openai_policy plus rate limits,
  streaming and background mode) and ``EndpointFatalError``;
- ``chat``: a request as data (``ChatRequest``), its body, its outcome (``Completion``), reading a reply;
- ``usage``: ``Usage``, the per-stage counters;
- ``limiter``: ``RateLimiter``, requests and tokens per minute and the endpoint-wide pause;
- ``client``: ``Endpoint``, the open client: attempts, failures, retries (the policy is app.core's);
- ``streaming``: reading a streamed reply strictly (to ``[DONE]`` or an error);
- ``responses`` and ``background``: background responses, the wire format and the submit/poll client.

Import each name from its module; this package re-exports nothing.
"""

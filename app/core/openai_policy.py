"""How this project talks to any OpenAI-compatible server: one policy for every client, one settings class.

Two clients use it: the completions backend of ``asclepius batch --endpoint`` (``app.core.remote``, standard
library) and the chat-completions / Responses client of ``asclepius data`` and ``asclepius judge``
(``training.endpoint``, over the ``openai`` package). Whatever both must agree on lives here, once:

- which base URLs are accepted (:func:`check_url`) and how a URL is recorded (:func:`public_url`);
- how an HTTP status is read (:func:`classify_status`): retry, stop everything, prompt too long, or refused;
- how long to wait: the server's ``Retry-After`` (:func:`retry_after_s`) or backoff with full jitter
  (:func:`backoff_s`), both bounded by :class:`EndpointSettings`;
- how a server-sent-event body is cut into events (:class:`SseDecoder`);
- how tokens are estimated without the served model's tokenizer (:func:`estimate_tokens`), and when a
  streamed answer is past its limit (:func:`past_token_limit`);
- :class:`EndpointSettings`: where to send and how hard to push, validated up front.

Pure: no connection is made, no thread started, standard library plus ``app.core.errors`` and ``resources``.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from app.core.errors import UsageError
from resources import get_style

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
"""The environment variable the key is read from unless the user names another (``--api-key-env``)."""
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
"""Transient by HTTP's own definition (and 409, which OpenAI documents as a retryable lock conflict); every
5xx is retryable too (:func:`classify_status`)."""
FATAL_STATUS = frozenset({401, 403, 404})
"""Every request would fail the same way (bad key, no access, wrong URL or model): stop at once."""
TOO_LONG_STATUS = frozenset({400, 413, 422})
"""The statuses servers use to refuse a prompt over the context (with a message saying so)."""
TOO_LONG_WORDS = ("context", "too long", "maximum")
"""vLLM: "maximum context length"; llama.cpp: "exceeds the available context size"; TGI: "too long"."""
ERROR_TEXT_MAX = 300
"""Characters of a server's error text kept in a message (its own words, never our prompt)."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What an environment variable's name looks like (POSIX). A key pasted into ``--api-key-env`` by mistake
(``sk-...``) does not, and is refused without being echoed."""
BYTES_PER_TOKEN = 3
"""BPE tokenizers average about 4 characters per token on English clinical text; 3 bytes errs on the side
of "does not fit", the safe side for a context check (a server's usage report corrects the accounting)."""


class StatusVerdict(Enum):
    """What a non-200 reply means for the request and for the client."""

    RETRY = "retry"
    """Another attempt may succeed (429, 5xx, 408/409/425)."""
    FATAL = "fatal"
    """Every request would fail the same way (401/403/404): stop sending."""
    TOO_LONG = "too_long"
    """This prompt is over the served model's context: this request fails, the others go on."""
    REFUSED = "refused"
    """This request is refused for another reason (another 4xx): it fails, no retry can help."""


def classify_status(status: int, message: str = "") -> StatusVerdict:
    """The verdict on an HTTP status other than 200 (``message``: the server's error text)."""
    if status in RETRYABLE_STATUS or status >= 500:
        return StatusVerdict.RETRY
    if status in FATAL_STATUS:
        return StatusVerdict.FATAL
    low = message.lower()
    if status in TOO_LONG_STATUS and any(w in low for w in TOO_LONG_WORDS):
        return StatusVerdict.TOO_LONG
    return StatusVerdict.REFUSED


def public_url(url: str) -> str:
    """The URL without userinfo, query or fragment (and no trailing slash): what may be printed and stored."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = p.port
    except ValueError:
        port = None
    return urlunsplit((p.scheme, host + (f":{port}" if port else ""), p.path.rstrip("/"), "", ""))


def check_url(url: str, flag: str = "--endpoint") -> str:
    """A usable endpoint base URL, or UsageError naming ``flag`` and why (credentials belong in the key
    variable: a key in the URL would be printed and logged)."""
    p = urlsplit(url.strip())
    if p.scheme not in ("http", "https") or not p.hostname:
        raise UsageError(f"{flag} must be an http(s) URL such as http://host:8000/v1, not {public_url(url)!r}")
    if p.username or p.password:
        raise UsageError(f"{flag} must not carry a user or password; put the key in the --api-key-env variable")
    if p.query or p.fragment:
        raise UsageError(f"{flag} must be a base URL without a query or fragment (e.g. http://host:8000/v1)")
    try:
        p.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"{flag} has a bad port: {public_url(url)!r}") from None
    return url.strip().rstrip("/")


def retry_after_s(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), or None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(max, base * 2**attempt)). The jitter spreads
    the retries of many workers refused at the same moment."""
    return rng.uniform(0, min(max_s, base_s * 2**attempt))


def estimate_tokens(text: str) -> int:
    """A conservative token count without the served model's tokenizer (see ``BYTES_PER_TOKEN``)."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def past_token_limit(pieces: int, max_tokens: int) -> bool:
    """Whether a streamed answer of ``pieces`` text pieces is past the ``max_tokens`` the request asked for.

    A server sends at least one token in each piece, so one that sends more pieces than that ignores the
    limit (or streams forever): the client stops reading there and ends the answer as cut at its limit
    (finish reason ``length``), as the server should have."""
    return pieces > max_tokens


def shorten(text: str) -> str:
    """One line of at most ``ERROR_TEXT_MAX`` characters (an error text for a message or a record)."""
    text = " ".join(text.split())
    return text[:ERROR_TEXT_MAX] + ("..." if len(text) > ERROR_TEXT_MAX else "")


def error_message(body: str) -> str:
    """The message of an error reply (OpenAI's ``{"error": {"message": ...}}`` or any text), shortened."""
    try:
        data = json.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        body = str(msg if msg else data)
    except ValueError:
        pass
    return shorten(body)


DONE = "[DONE]"
"""The data of the event OpenAI-compatible servers end a stream with: a reply counts only once it came."""


def is_done(payload: str) -> bool:
    return payload.strip() == DONE


class SseDecoder:
    """Server-sent events: feed the body's lines, get each event's data when the blank line ending it comes.

    The subset of the SSE rules these APIs use: ``data:`` lines of one event are joined with newlines (one
    space after the colon dropped); comments (``:``) and other fields (``event:``, ``id:``, ``retry:``) are
    skipped; an event the body ends without its blank line is not dispatched (:meth:`pending` has it).
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        """One line without its line ending; the event's data when this line is the blank one ending it."""
        if line == "":
            if not self._data:
                return None
            payload, self._data = "\n".join(self._data), []
            return payload
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def pending(self) -> str:
        """The data of an unfinished last event (the body ended without its blank line), and forget it."""
        payload, self._data = "\n".join(self._data), []
        return payload


@dataclass(frozen=True)
class EndpointSettings:
    """Where to send requests and how hard to push: the fields every endpoint client shares. Validated up
    front (UsageError lists every problem, naming the command's own flags, ``FLAGS``).

    The defaults are those of ``asclepius batch --endpoint`` (answers streamed to a person, a few at a
    time); ``training.endpoint.settings.ChatSettings`` extends this class for bulk generation."""

    base_url: str
    """``http(s)://host[:port]/v1``: the only address the command connects to (:func:`check_url`)."""
    served_model: str
    """The model name the server serves (vLLM: ``--served-model-name``; llama.cpp: ``--model_alias``)."""
    prompt_style: str = "asclepius"
    """The completions backend only (it renders the prompt itself): the served model's prompt style. The
    chat-completions client sends a chat message, and the server's chat template applies."""
    api_key_env: str = DEFAULT_KEY_ENV
    """Name of the environment variable holding the key (never the key itself, which is never stored)."""
    concurrency: int = 4
    """Requests in flight at once (a batch's bound)."""
    timeout_s: float = 600.0
    """Per attempt, an overall deadline: connecting, sending and reading the whole reply (every event of a
    stream) must end within it, however the server trickles. Long generations on a slow server are normal; a
    hung connection, a stalled stream or one that never ends is not."""
    max_attempts: int = 5
    """Attempts per request; a request still failing after them fails (and a later run goes on)."""
    backoff_base_s: float = 1.0
    """First step of the backoff (:func:`backoff_s`)."""
    backoff_max_s: float = 30.0
    """The longest backoff between two attempts."""
    retry_after_max_s: float = 300.0
    """A longer ``Retry-After`` from the server is capped to this."""
    context_length: int | None = None
    """The completions backend only: the served model's context; None: what the server reports (vLLM's
    ``max_model_len``), else unknown."""

    FLAGS: ClassVar[Mapping[str, str]] = {
        "base_url": "--endpoint",
        "served_model": "--endpoint-model",
        "timeout_s": "--endpoint-timeout",
        "max_attempts": "--endpoint-attempts",
    }
    """The command-line flag of a field, for messages (a field not named here: ``--field-name``)."""
    MAX_CONCURRENCY: ClassVar[int] = 64
    """A batch's requests go to one server that answers a few at a time; more only queue there."""
    MAX_ATTEMPTS: ClassVar[int] = 100

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise UsageError("; ".join(problems))

    def flag(self, name: str) -> str:
        return self.FLAGS.get(name, "--" + name.replace("_", "-"))

    def problems(self) -> list[str]:
        """Everything wrong with these settings (a subclass adds its own)."""
        problems = []
        try:
            check_url(self.base_url, self.flag("base_url"))
        except UsageError as e:
            problems.append(str(e))
        if not self.served_model.strip():
            problems.append(f"{self.flag('served_model')} must name the model the server serves")
        try:
            get_style(self.prompt_style)
        except KeyError as e:
            problems.append(str(e.args[0]))
        if not ENV_NAME.fullmatch(self.api_key_env):  # the value is never quoted: it may be the key itself
            problems.append(
                f"{self.flag('api_key_env')} names an environment variable (letters, digits and _), not the key itself"
            )
        if not 1 <= self.concurrency <= self.MAX_CONCURRENCY:
            problems.append(f"{self.flag('concurrency')} must be 1..{self.MAX_CONCURRENCY}, not {self.concurrency}")
        if not self.timeout_s > 0:
            problems.append(f"{self.flag('timeout_s')} must be positive")
        if not 1 <= self.max_attempts <= self.MAX_ATTEMPTS:
            problems.append(f"{self.flag('max_attempts')} must be 1..{self.MAX_ATTEMPTS}")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            problems.append("backoff: 0 <= base <= max")
        if self.context_length is not None and self.context_length < 1:
            problems.append("the context length must be positive")
        return problems

    @property
    def public_url(self) -> str:
        return public_url(self.base_url)

    def identity(self) -> str:
        """The remote model's id in the log (the ``sha256`` a local model has): endpoint + served name."""
        return hashlib.sha256(f"remote\0{self.public_url}\0{self.served_model}".encode()).hexdigest()

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """The wait before attempt ``attempt + 1`` when the server named none."""
        return backoff_s(attempt, self.backoff_base_s, self.backoff_max_s, rng)

    def server_wait_s(self, headers: Any) -> tuple[float | None, bool]:
        """The server's ``Retry-After`` capped to ``retry_after_max_s`` (None: it named none), and whether
        the cap applied."""
        wait = retry_after_s(headers)
        if wait is None or wait <= self.retry_after_max_s:
            return wait, False
        return self.retry_after_max_s, True

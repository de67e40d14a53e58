"""The policy every OpenAI-compatible client shares (app.core.openai_policy): one verdict per status, one
SSE reading, one wait rule, one settings class whose defaults the CLI flags show."""

from __future__ import annotations

import random

import pytest

from app.core.errors import UsageError
from app.core.openai_policy import (
    EndpointSettings,
    SseDecoder,
    StatusVerdict,
    backoff_s,
    classify_status,
    estimate_tokens,
    is_done,
)


@pytest.mark.parametrize(
    ("status", "message", "verdict"),
    [
        (429, "", StatusVerdict.RETRY),
        (408, "", StatusVerdict.RETRY),
        (503, "", StatusVerdict.RETRY),
        (529, "overloaded", StatusVerdict.RETRY),  # any 5xx: a server-side condition another try may not meet
        (401, "", StatusVerdict.FATAL),
        (404, "no such model", StatusVerdict.FATAL),
        (400, "This model's maximum context length is 4096 tokens", StatusVerdict.TOO_LONG),
        (413, "prompt too long", StatusVerdict.TOO_LONG),
        (400, "temperature must be a number", StatusVerdict.REFUSED),
        (422, "", StatusVerdict.REFUSED),
    ],
)
def test_each_status_has_one_verdict(status: int, message: str, verdict: StatusVerdict) -> None:
    assert classify_status(status, message) is verdict


def test_sse_decoder_joins_data_lines_and_skips_the_rest() -> None:
    sse = SseDecoder()
    lines = [": keep-alive", "event: chunk", 'data: {"a":', "data:1}", "id: 7", "", "", "data: [DONE]"]
    got = [p for p in (sse.feed(line) for line in lines) if p is not None]
    assert got == ['{"a":\n1}']  # the last event had no blank line after it: not dispatched
    pending = sse.pending()
    assert is_done(pending) and sse.pending() == ""


def test_backoff_is_full_jitter_under_the_cap() -> None:
    rng = random.Random(1)
    waits = [backoff_s(attempt, 1.0, 30.0, rng) for attempt in range(1, 12) for _ in range(20)]
    assert all(0 <= w <= 30.0 for w in waits) and max(waits) > 16  # reaches past 2**4 once the cap allows
    assert all(backoff_s(1, 1.0, 30.0, rng) <= 2.0 for _ in range(50))


def test_retry_after_is_capped_and_says_so() -> None:
    s = EndpointSettings("http://h/v1", "m", retry_after_max_s=10.0)
    assert s.server_wait_s({"retry-after": "3"}) == (3.0, False)
    assert s.server_wait_s({"retry-after": "600"}) == (10.0, True)
    assert s.server_wait_s({}) == (None, False)


def test_estimate_is_three_bytes_a_token() -> None:
    assert estimate_tokens("abcdef") == 2 and estimate_tokens("é") == 1 and estimate_tokens("") == 0


def test_settings_name_each_commands_own_flags() -> None:
    from training.endpoint.settings import ChatSettings

    with pytest.raises(UsageError) as app_err:
        EndpointSettings("http://u:p@h/v1", " ", timeout_s=0)
    assert all(f in str(app_err.value) for f in ("--endpoint ", "--endpoint-model", "--endpoint-timeout"))
    with pytest.raises(UsageError) as data_err:
        ChatSettings("http://u:p@h/v1", " ", timeout_s=0, requests_per_minute=0)
    assert all(f in str(data_err.value) for f in ("--base-url", "--model", "--timeout", "--rpm"))
    assert ChatSettings("http://h/v1", "m", concurrency=4096).concurrency == 4096
    with pytest.raises(UsageError, match=r"1\.\.64"):
        EndpointSettings("http://h/v1", "m", concurrency=65)


def test_data_and_judge_flags_show_the_settings_defaults() -> None:
    from app.cli.main import build_parser
    from training.endpoint.settings import ChatSettings

    args = build_parser().parse_args(["judge", "--answers", "a.jsonl", "--base-url", "http://h/v1", "--model", "m"])
    assert (args.concurrency, args.timeout, args.max_attempts, args.api_key_env) == (
        ChatSettings.concurrency, ChatSettings.timeout_s, ChatSettings.max_attempts, ChatSettings.api_key_env,
    )  # fmt: skip
    assert (ChatSettings.concurrency, EndpointSettings.concurrency) == (8, 4)  # each command's own default

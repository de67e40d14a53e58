"""What one stage cost and what went wrong on the way: the counters every client request adds to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Usage:
    """What one stage cost and what went wrong on the way."""

    requests: int = 0
    """Items attempted in this run."""
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    """HTTP requests sent (first tries + retries)."""
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    timeouts: int = 0
    malformed: int = 0
    client_errors: int = 0
    retry_after_capped: int = 0
    truncated_streams: int = 0
    """Streamed replies that ended before ``[DONE]`` (connection cut or body ended): retried."""
    usage_counted: int = 0
    """Streamed replies without a usage chunk: completion tokens counted from the stream, prompt estimated."""
    resent_after_interruption: int = 0
    """Requests an earlier run sent and got no reply for (it was killed with them in flight): sent again.
    Unavoidable (the reply never arrived) and not duplicates of a received reply, which are never re-sent."""
    submitted: int = 0
    """Background mode: responses the server accepted (``POST /responses`` answered with an id)."""
    recovered_after_interruption: int = 0
    """Background mode: replies fetched by id for responses an earlier run submitted and did not wait for."""
    polls: int = 0
    """Background mode: ``GET /responses/{id}`` requests."""
    poll_errors: int = 0
    """Background mode: polls that failed (5xx, 429, connection, timeout, malformed); polled again, not re-sent."""
    responses_lost: int = 0
    """Background mode: a response the server no longer had (404 when polled): submitted again."""
    responses_deleted: int = 0
    """Background mode: stored responses deleted from the server after their reply was recorded."""
    delete_failed: int = 0
    """Background mode: deletions the server refused or that failed (the response stays stored there)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}

    def line(self) -> str:
        streams = f", {self.truncated_streams} truncated streams" if self.truncated_streams else ""
        resent = (
            f"; {self.resent_after_interruption:,} re-sent after an interruption (an earlier run was stopped "
            "with them in flight, no reply received)"
            if self.resent_after_interruption
            else ""
        )
        counted = f" ({self.usage_counted:,} replies counted from the stream)" if self.usage_counted else ""
        if self.submitted or self.polls or self.recovered_after_interruption:
            resent += (
                f"; background: {self.submitted:,} submitted, {self.polls:,} polls ({self.poll_errors:,} failed), "
                f"{self.recovered_after_interruption:,} replies fetched for an earlier run's requests, "
                f"{self.responses_lost:,} lost by the server and submitted again, {self.responses_deleted:,} "
                f"deleted from the server once recorded ({self.delete_failed:,} deletions failed)"
            )
        return (
            f"{self.succeeded:,} done, {self.failed:,} failed of {self.requests:,}; {self.attempts:,} HTTP requests "
            f"({self.retries:,} retries: {self.rate_limited} rate-limited, {self.server_errors} server errors, "
            f"{self.connection_errors} connection errors, {self.timeouts} timeouts, {self.malformed} malformed"
            f"{streams}){resent}; tokens {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion"
            f"{counted}; {self.elapsed_s:.1f} s"
        )

"""Bad-input rows for the endpoint commands (``batch --endpoint``, ``data``, ``judge``): one URL policy, no secret
echoed (issue #21, the "secrets printed" item).

Every URL here points at a closed loopback port (``127.0.0.1:9``): each input is refused before any request,
so no server is needed. Inputs that need a server (a stream that never ends, a reply with ``choices: null``,
all requests failing) are ordinary tests beside their client: tests/unit/test_remote.py and
tests/training/test_endpoint_deadlines.py.
"""

from __future__ import annotations

from typing import Any

from tests.reliability.cases import USAGE, Case

SECRET = "S3CRET"
URL = "http://127.0.0.1:9/v1"
WITH_PASSWORD = f"http://alice:{SECRET}@127.0.0.1:9/v1"
ANSWERS: tuple[Any, ...] = (
    "write",
    "a.jsonl",
    '{"note": "Pt on aspirin.", "question": "Drug?", "answers": [{"model": "a", "answer": "aspirin"}, '
    '{"model": "b", "answer": "none"}]}\n',
)
JUDGE = ("judge", "--answers", "{tmp}/a.jsonl", "--model", "m", "--out", "{tmp}/o", "--no-progress")
NOTES = ("data", "notes", "{tmp}/cases.csv", "--model", "m", "--out", "{tmp}/o", "--no-progress")
CASES_CSV: tuple[Any, ...] = ("write", "cases.csv", "patient\nA 70-year-old man with chest pain.\n")
BATCH = ("batch", "{tmp}/in.csv", "--endpoint-model", "m", "--db", "{tmp}/b.db")
USER_OR_PASSWORD = "must not carry a user or password"
NOT_THE_KEY = "names an environment variable"

CASES: tuple[Case, ...] = (
    # -- credentials in the URL: refused, and the password never shown (not even in "connects to ...") -------
    Case(
        "judge-base-url-password",
        (*JUDGE, "--base-url", WITH_PASSWORD),
        USAGE,
        USER_OR_PASSWORD,
        setup=(ANSWERS,),
        absent=("{tmp}/o",),
        hidden=(SECRET,),
    ),
    Case(
        "judge-base-url-query-key",
        (*JUDGE, "--base-url", f"{URL}?api_key={SECRET}"),
        USAGE,
        "without a query",
        setup=(ANSWERS,),
        absent=("{tmp}/o",),
        hidden=(SECRET,),
    ),
    Case(
        "judge-base-url-password-bad-port",
        (*JUDGE, "--base-url", f"http://alice:{SECRET}@127.0.0.1:99999/v1"),
        USAGE,
        USER_OR_PASSWORD,
        setup=(ANSWERS,),
        hidden=(SECRET,),
    ),
    Case(
        "data-notes-base-url-password",
        (*NOTES, "--base-url", WITH_PASSWORD),
        USAGE,
        USER_OR_PASSWORD,
        setup=(CASES_CSV,),
        absent=("{tmp}/o",),
        hidden=(SECRET,),
    ),
    Case(
        "batch-endpoint-password",
        (*BATCH, "--endpoint", WITH_PASSWORD),
        USAGE,
        USER_OR_PASSWORD,
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
        hidden=(SECRET,),
    ),
    # -- a key pasted into --api-key-env (which names a variable): refused without echoing it -------------
    Case(
        "judge-api-key-env-is-a-key",
        (*JUDGE, "--base-url", URL, "--api-key-env", f"sk-{SECRET}"),
        USAGE,
        NOT_THE_KEY,
        setup=(ANSWERS,),
        absent=("{tmp}/o",),
        hidden=(SECRET,),
    ),
    Case(
        "data-notes-api-key-env-is-a-key",
        (*NOTES, "--base-url", URL, "--api-key-env", f"sk-{SECRET}"),
        USAGE,
        NOT_THE_KEY,
        setup=(CASES_CSV,),
        absent=("{tmp}/o",),
        hidden=(SECRET,),
    ),
    Case(
        "batch-api-key-env-is-a-key",
        (*BATCH, "--endpoint", URL, "--api-key-env", f"sk-{SECRET}"),
        USAGE,
        NOT_THE_KEY,
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
        hidden=(SECRET,),
    ),
)

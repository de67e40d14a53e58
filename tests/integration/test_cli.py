"""The `asclepius` command as a user runs it: real subprocesses, real model, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from resources import load_sample
from tests.integration.netns_probe import kernel_allows_netns


def run(*args, stdin=None, env_extra=None, timeout=240):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def note_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("notes") / "note.txt"
    p.write_text(load_sample("pneumonia").text, encoding="utf-8")
    return p


def test_ask_streams_answer_to_stdout_and_metrics_to_stderr(demo_model, note_file):
    r = run(
        "ask",
        "--note",
        str(note_file),
        "--task",
        "qa",
        "--max-tokens",
        "24",
        "--no-log",
        "What was the creatinine on admission?",
    )
    assert r.returncode == 0, r.stderr.decode()
    assert "1.9" in r.stdout.decode()
    err = r.stderr.decode()
    assert "demo model" in err and "time to first token" in err and "grounding:" in err
    assert "Traceback" not in err


def test_ask_reads_the_note_from_stdin_and_prints_json(demo_model):
    note = load_sample("heart-failure").text.encode()
    r = run("ask", "--note", "-", "--task", "qa", "--max-tokens", "16", "--json", "--no-log", "What was the BNP?",
            stdin=note)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(r.stdout)
    assert d["task"] == "Question Answering" and d["model_sha256"] == demo_model.sha256
    assert d["sampling"]["max_tokens"] == 16 and d["finish_reason"] in ("stop", "length")


def test_ask_json_reports_the_lookup_acceptance_and_no_lookup_decodes_plainly(demo_model, note_file):
    args = ("ask", "--note", str(note_file), "--task", "ner", "--max-tokens", "24", "--json", "--no-log",
            "List every medication mentioned in the discharge summary with its dose and frequency.")  # fmt: skip
    r = run(*args, "--lookup")
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(r.stdout)
    lk = d["lookup"]
    assert lk["drafted"] > 0 and 0 <= lk["accepted"] <= lk["drafted"]
    assert lk["acceptance"] == pytest.approx(lk["accepted"] / lk["drafted"])
    assert "prompt lookup:" in r.stderr.decode()
    plain = run(*args, "--no-lookup")
    assert plain.returncode == 0, plain.stderr.decode()
    p = json.loads(plain.stdout)
    assert p["lookup"] is None and "prompt lookup:" not in plain.stderr.decode()
    assert p["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        (lambda p: p.write_text("  \n\n "), ["--task", "qa"], 3, "empty"),
        (lambda p: p.write_text("x" * 200_001), ["--task", "qa"], 3, "200,000"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50), ["--task", "qa"], 3, "binary"),
        (lambda p: p.write_bytes("Fièvre".encode("latin-1")), ["--task", "qa"], 3, "not valid UTF-8"),
        (lambda p: p.write_text("note"), ["--task", "translation"], 2, "unknown task"),
        (lambda p: p.write_text("note"), ["--task", "qa", "--model", "/nonexistent/model.gguf"], 4, "not found"),
    ],
    ids=["empty", "huge", "binary", "non-utf8", "unknown-task", "missing-model"],
)
def test_bad_input_gives_specific_message_and_exit_code(tmp_path, demo_model, setup, args, code, message):
    note = tmp_path / "note.txt"
    setup(note)
    r = run("ask", "--note", str(note), *args, "--no-log", "What?")
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert message in err and "Traceback" not in err
    assert r.stdout == b""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a model at all\n" * 10, "not a GGUF file"),
        (b"GGUF\x03\x00\x00\x00\xff\xff", "damaged or truncated"),
    ],
    ids=["non-gguf", "broken-gguf"],
)
def test_bad_model_files_exit_4(tmp_path, demo_model, note_file, content, message):
    model = tmp_path / "model.gguf"
    model.write_bytes(content)
    r = run("ask", "--note", str(note_file), "--task", "qa", "--model", str(model), "--no-log", "What?")
    assert r.returncode == 4 and message in r.stderr.decode() and b"Traceback" not in r.stderr


def test_truncated_and_unsupported_ggufs_exit_4(tmp_path, demo_model, note_file):
    import gguf
    import numpy as np

    cut = tmp_path / "cut.gguf"
    with open(demo_model.path, "rb") as src:
        cut.write_bytes(src.read(30 << 20))
    r = run("ask", "--note", str(note_file), "--task", "qa", "--model", str(cut), "--no-log", "What?")
    assert r.returncode == 4 and "truncated" in r.stderr.decode()

    other = tmp_path / "bert.gguf"
    w = gguf.GGUFWriter(str(other), "bert")
    w.add_context_length(512)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = run("ask", "--note", str(note_file), "--task", "qa", "--model", str(other), "--no-log", "What?")
    assert r.returncode == 4 and "'bert' is not supported" in r.stderr.decode()


def test_context_overflow_exits_5_and_truncate_flag_reports_the_cut(tmp_path, demo_model, shared_data):
    from tests.conftest import aci_notes

    note = tmp_path / "long.txt"
    note.write_text("\n\n".join(aci_notes(shared_data, 3)))
    cfg_home = tmp_path / "home"
    (cfg_home / "config").mkdir(parents=True)
    (cfg_home / "config" / "config.json").write_text(json.dumps({"engine": {"n_ctx": 1024}}))
    # Reuse the session's registered demo model file by importing it into this home by path.
    env = {"ASCLEPIUS_HOME": str(cfg_home)}
    r = run("ask", "--note", str(note), "--task", "qa", "--model", demo_model.path, "--no-log", "What?", env_extra=env)
    assert r.returncode == 5, r.stderr.decode()
    assert "does not fit" in r.stderr.decode() and "1024" in r.stderr.decode() and "--truncate" in r.stderr.decode()
    r = run("ask", "--note", str(note), "--task", "qa", "--model", demo_model.path, "--no-log", "--truncate",
            "--max-tokens", "8", "What?", env_extra=env)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    assert "note truncated: kept the first" in r.stderr.decode()


def test_usage_errors_exit_2_without_traceback():
    r = run("ask", "--task", "qa")
    assert r.returncode == 2 and b"--note" in r.stderr and b"Traceback" not in r.stderr


def test_tasks_and_models_commands(demo_model):
    r = run("tasks", "--json")
    tasks = json.loads(r.stdout)
    assert tasks[0]["name"] == "Named Entity Recognition" and len(tasks) == 8
    r = run("models", "list")
    assert r.returncode == 0 and demo_model.short_sha in r.stdout.decode()
    assert "not trained for clinical tasks" in r.stdout.decode()
    r = run("models", "verify", demo_model.sha256[:12])
    assert r.returncode == 0 and b"ok:" in r.stdout


AUDIT = textwrap.dedent(
    """
    import json, socket, sys
    events = []
    NET = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
           "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getnameinfo"}
    def hook(event, args):
        if event in NET:
            events.append(event)
    sys.addaudithook(hook)
    from app.cli.main import main
    code = main(sys.argv[1:])
    during = list(events)
    try:  # positive control: the hook does see a lookup (the app's guard then blocks it)
        socket.getaddrinfo("localhost", 80)
    except OSError:
        pass
    print(json.dumps({"code": code, "during": during, "control": events[len(during):]}), file=sys.stderr)
    """
)


def test_ask_attempts_no_network_connection_or_dns_lookup(demo_model, note_file):
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            AUDIT,
            "ask",
            "--note",
            str(note_file),
            "--task",
            "qa",
            "--max-tokens",
            "8",
            "What was the creatinine?",
        ],
        capture_output=True,
        timeout=240,
    )
    report = json.loads(r.stderr.decode().strip().splitlines()[-1])
    assert report["code"] == 0, r.stderr.decode()
    assert report["during"] == []
    assert report["control"] == ["socket.getaddrinfo"]


def test_selftest_passes_offline(demo_model, tmp_path):
    # Under a policy: reading it before the namespace is entered must not cost the isolation; selftest prints it.
    policy = tmp_path / "policy.toml"
    policy.write_text("endpoint_commands = false\n")
    r = run("selftest", env_extra={"ASCLEPIUS_POLICY_FILE": str(policy)})
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "no connection or DNS lookup was attempted" in out and "selftest passed" in out
    line = next(x for x in out.splitlines() if "endpoint_commands" in x)
    assert "policy: in force" in out and line.split()[1] == "false" and f"policy ({policy})]" in line
    # selftest says which protection is in force, and checked the namespace from inside.
    if kernel_allows_netns():
        assert "network protection: network namespace + audit hook" in out
        assert "network interfaces visible: lo\n" in out
    else:
        assert "network protection: audit hook only (" in out
    assert "AVX" in out or "NEON" in out or "CPU" in out

"""The organisation's policy (app/core/policy.py), enforced through the real commands (``main([...])``).

Each test points ``ASCLEPIUS_POLICY_FILE`` at its own file (nothing reads or writes /etc) and
``ASCLEPIUS_HOME`` at its own directory, whose ``config/policy.toml`` is the user's own policy file.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from app.cli.main import build_parser, main
from app.core import netns
from app.core.config import AppConfig, Paths, load_config, read_config, save_config
from app.core.errors import PolicyError
from app.core.policy import POLICY_FILE_ENV, Policy, load_policy
from app.store import EvalLog
from tests.fakes import FakeEngine, fake_model

URL = "http://127.0.0.1:9/v1"  # a closed port on loopback: nothing is ever reached


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASCLEPIUS_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "config").mkdir(parents=True)
    return tmp_path / "home"


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path):
    """Write the machine policy file (what /etc/asclepius-desk/policy.toml would hold)."""
    f = tmp_path / "etc" / "policy.toml"
    f.parent.mkdir()
    monkeypatch.setenv(POLICY_FILE_ENV, str(f))

    def write(text: str) -> Path:
        f.write_text(text, encoding="utf-8")
        return f

    return write


def user_policy(home: Path, text: str) -> Path:
    f = home / "config" / "policy.toml"
    f.write_text(text, encoding="utf-8")
    return f


@pytest.fixture
def items(tmp_path: Path) -> Path:
    f = tmp_path / "items.csv"
    f.write_text("note,task,instruction\nPatient stable.,qa,How is the patient?\n", encoding="utf-8")
    return f


def test_no_policy_file_restricts_nothing(machine, home, capsys):
    policy = load_policy(Paths.default().policy_file)
    assert not policy.in_force and policy.policy == Policy()
    policy.check_endpoint("http://anywhere.example/v1", "batch")  # no refusal
    assert main(["policy", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["in_force"] is False and doc["keys"]["endpoint_commands"] == {
        "value": True,
        "source": None,
        "locked": False,
    }


def test_policy_command_prints_every_value_and_its_source(machine, home, capsys):
    f = machine(
        'store_note_text = false\nallowed_endpoint_hosts = ["GPU01.Hospital.example."]\nlocked = ["store_note_text"]\n'
    )
    user = user_policy(home, "note_state_cache = false\n")
    assert main(["policy"]) == 0
    out = capsys.readouterr().out
    assert f"machine policy: {f}" in out and f"user policy: {user}" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "false" in lines["store_note_text"]
    assert f"your organisation's policy ({f}), locked" in lines["store_note_text"]
    assert f"your own policy file ({user})" in lines["note_state_cache"]
    assert "gpu01.hospital.example" in lines["allowed_endpoint_hosts"]
    assert "built-in default" in lines["log_path"] and "built-in default" in lines["endpoint_commands"]


def test_user_override_is_honoured_where_allowed_and_refused_where_locked(machine, home, items, capsys):
    f = machine('store_note_text = false\nendpoint_commands = true\nlocked = ["store_note_text"]\n')
    user = user_policy(home, "store_note_text = true\nendpoint_commands = false\n")
    policy = load_policy(Paths.default().policy_file)
    assert policy.policy.store_note_text is False and policy.sources["store_note_text"] == f
    assert policy.policy.endpoint_commands is False and policy.sources["endpoint_commands"] == user
    assert policy.refused == ("store_note_text",)
    # The refused key is a notice on every command; the allowed override refuses the endpoint command.
    code = main(["batch", str(items), "--endpoint", URL, "--endpoint-model", "m"])
    err = capsys.readouterr().err
    assert code == PolicyError.exit_code
    assert f"{user} sets store_note_text" in err and "locks: not applied" in err
    assert f"endpoint_commands = false in your own policy file ({user})" in err


def test_allow_user_override_false_ignores_the_user_file_altogether(machine, home, items, capsys):
    machine("allow_user_override = false\nendpoint_commands = true\n")
    user_policy(home, "endpoint_commands = false\nthis is not toml\n")  # not even read: no error either
    policy = load_policy(Paths.default().policy_file)
    assert policy.user_file is None and policy.policy.endpoint_commands is True
    assert main(["policy"]) == 0
    assert "not read (allow_user_override = false)" in capsys.readouterr().out
    # The endpoint command is not refused by the ignored user file: it goes on and finds the port closed (8).
    code = main(["batch", str(items), "--endpoint", URL, "--endpoint-model", "m", "--endpoint-attempts", "1"])
    assert code == 8, capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("store_note_text = \n", "not valid TOML"),
        ("store_note_txt = false\n", "unknown key 'store_note_txt'"),
        ('store_note_text = "no"\n', "store_note_text must be true or false"),
        ('locked = ["log_path"]\nstore_note_text = false\n', "locked names 'log_path', which this file does not set"),
        ('allowed_endpoint_hosts = ["http://gpu01/v1"]\n', "is not a host name"),
        ('allowed_endpoint_hosts = ["gpu01:8000"]\n', "is not a host name"),
        ('allowed_endpoint_hosts = "gpu01"\n', "must be a list of host names"),
        ('log_path = "logs/asclepius.db"\n', "log_path must be absolute"),
    ],
)
def test_a_malformed_machine_policy_refuses_every_command(machine, home, capsys, text, fragment):
    f = machine(text)
    assert main(["tasks"]) == PolicyError.exit_code
    out, err = capsys.readouterr()
    assert out == "", "the command must not run"
    assert f"policy file {f}" in err and fragment in err and "Traceback" not in err


def test_a_malformed_or_overreaching_user_policy_refuses_too(machine, home, capsys):
    machine("")
    user = user_policy(home, "allow_user_override = true\n")
    assert main(["tasks"]) == PolicyError.exit_code
    assert f"policy file {user}" in capsys.readouterr().err
    user.write_bytes(b"store_note_text = false # \xff\n")
    assert main(["tasks"]) == PolicyError.exit_code
    assert "not UTF-8" in capsys.readouterr().err


def test_an_unreadable_policy_file_refuses_every_command(tmp_path, machine, home, monkeypatch, capsys):
    monkeypatch.setenv(POLICY_FILE_ENV, str(tmp_path))  # a directory: read() fails
    assert main(["tasks"]) == PolicyError.exit_code
    assert f"policy file {tmp_path} cannot be read" in capsys.readouterr().err
    if os.geteuid() != 0:  # root reads a 000 file anyway
        f = machine("store_note_text = false\n")
        f.chmod(0)
        assert main(["tasks"]) == PolicyError.exit_code
        assert "cannot be read" in capsys.readouterr().err


def test_the_log_lands_where_the_policy_says_and_db_elsewhere_is_refused(tmp_path, machine, home, items, capsys):
    fixed_dir = tmp_path / "srv"
    fixed_dir.mkdir()
    f = machine(f'log_path = "{fixed_dir}/{{user}}.db"\n')
    fixed = fixed_dir / f"{pwd.getpwuid(os.getuid()).pw_name}.db"
    # The user's own setting points elsewhere: the policy's value is in force, the user's is kept on disk.
    paths = Paths.default()
    save_config(paths, AppConfig(database=str(tmp_path / "mine.db")))
    # batch opens the log before it loads a model (then the model is missing: exit 4).
    assert main(["batch", str(items), "--model", str(tmp_path / "none.gguf")]) == 4
    assert fixed.exists() and not (tmp_path / "mine.db").exists()
    capsys.readouterr()
    assert main(["log", "stats", "--db", str(tmp_path / "other.db")]) == PolicyError.exit_code
    err = capsys.readouterr().err
    assert f"fixed at {fixed} by log_path in your organisation's policy ({f})" in err
    assert not (tmp_path / "other.db").exists()
    assert main(["log", "stats", "--db", str(fixed)]) == 0  # naming the fixed file itself is fine
    config = load_config(paths)
    save_config(paths, config)  # saving the settings in force keeps the user's own choice on disk
    assert read_config(paths).database == str(tmp_path / "mine.db") and config.database == str(fixed)


def _fake_engines(monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    """The local engine replaced by a fake that records the note-state directory each command gives it."""
    import app.core.engine
    from app.cli.context import CliContext

    dirs: list[Path | None] = []

    def engine(model, config, *, state_dir=None):  # type: ignore[no-untyped-def]
        dirs.append(state_dir)
        return FakeEngine(model=model)

    monkeypatch.setattr(app.core.engine, "LlamaCppEngine", engine)
    monkeypatch.setattr(CliContext, "model", lambda self, ref: fake_model())
    return dirs


def test_ask_obeys_note_text_and_note_state_cache_off(tmp_path, machine, home, monkeypatch, capsys):
    dirs = _fake_engines(monkeypatch)
    note = tmp_path / "note.txt"
    note.write_text("Admitted with pneumonia. Creatinine 1.4 mg/dL on admission.", encoding="utf-8")
    argv = ["ask", "--note", str(note), "--task", "qa", "What was the creatinine?"]
    db = home / "data" / "asclepius.db"
    machine("")  # control: without a policy the note is stored and note states are kept on disk
    assert main(argv) == 0
    assert dirs[-1] == home / "data" / "kvstate"
    machine("store_note_text = false\nnote_state_cache = false\n")
    note.write_text("Discharged home. Creatinine 1.1 mg/dL at discharge.", encoding="utf-8")  # a note not yet kept
    assert main(argv) == 0, capsys.readouterr().err
    assert dirs[-1] is None
    with EvalLog.open(db) as log:
        kept, hashed = (log.get_run(r.id) for r in sorted(log.list_runs(), key=lambda r: r.id))
    assert kept.note_text and hashed.note_text is None and hashed.note_chars > 0
    # The policy's store_note_text beats the user's own setting, which stays theirs on disk.
    machine("store_note_text = true\n")
    save_config(Paths.default(), AppConfig(store_note_text=False))
    assert load_config(Paths.default()).store_note_text is True


ENDPOINT_COMMANDS = [  # (the name a refusal gives, argv)
    ("batch", ["batch", "{items}", "--endpoint", URL, "--endpoint-model", "m"]),
    ("eval run", ["eval", "run", "pubmedqa", "--data", "{tmp}/none.json", "--endpoint", URL, "--endpoint-model", "m"]),
    (
        "study create",
        ["study", "create", "s", "--items", "{items}", "--endpoint", URL, "--endpoint-model", "m", "--raters", "a"],
    ),
    ("study generate", ["study", "generate", "s", "--endpoint", URL]),
    (
        "data notes",
        ["data", "notes", "{items}", "--base-url", URL, "--model", "m", "--out", "{tmp}/d", "--no-progress"],
    ),
    ("judge", ["judge", "--answers", "{tmp}/a.jsonl", "--base-url", URL, "--model", "m", "--no-progress"]),
]


@pytest.mark.parametrize(("name", "argv"), ENDPOINT_COMMANDS, ids=[n for n, _ in ENDPOINT_COMMANDS])
def test_every_endpoint_command_is_refused_when_the_policy_says_so(tmp_path, machine, home, items, capsys, name, argv):
    if argv[0] in ("data", "judge"):
        pytest.importorskip("training.data.cli")
    args = [a.format(items=items, tmp=tmp_path) for a in argv]
    f = machine("endpoint_commands = false\n")
    assert main(args) == PolicyError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"asclepius: error: `{name}` sends text to 127.0.0.1 and is refused by ")
    assert f"endpoint_commands = false in your organisation's policy ({f})" in err
    assert "connects to" not in err  # refused before the network allowance is made
    machine('allowed_endpoint_hosts = ["gpu01.hospital.example"]\n')
    assert main(args) == PolicyError.exit_code
    assert f"`{name}` may not reach host 127.0.0.1: allowed_endpoint_hosts" in capsys.readouterr().err


def test_an_allowed_host_passes_case_and_trailing_dot_aside(machine, home, items, capsys):
    machine('allowed_endpoint_hosts = ["LOCALHOST", "127.0.0.1"]\n')
    policy = load_policy(Paths.default().policy_file)
    policy.check_endpoint("http://localhost.:8000/v1", "batch")
    policy.check_endpoint("https://LocalHost/v1", "batch")
    with pytest.raises(PolicyError, match="may not reach host gpu02"):
        policy.check_endpoint("http://gpu02:8000/v1", "batch")
    code = main(["batch", str(items), "--endpoint", URL, "--endpoint-model", "m", "--endpoint-attempts", "1"])
    assert code == 8  # allowed: it goes on to the closed port


def _subparsers(parser, func=None):  # type: ignore[no-untyped-def]
    """(parser, its handler) for every subcommand; a group's handler serves its actions unless they set one."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for sub in action.choices.values():
                handler = sub._defaults.get("func", func)
                yield sub, handler
                yield from _subparsers(sub, handler)


def test_every_command_with_a_url_option_is_an_endpoint_command():
    """The policy's endpoint check sits where endpoint commands leave the network fence (``protect``): a new
    command with a URL option must be marked ``@netns.calls_endpoint`` or it would skip the check (and fail
    to connect, which the audit hook blocks)."""
    marked = []
    for sub, func in _subparsers(build_parser()):
        dests = {a.dest for a in sub._actions}
        if dests & {"endpoint", "base_url"}:
            assert func is not None and netns.endpoint_of(func, _Args()) is not None, sub.prog
            marked.append(sub.prog)
    assert len(marked) >= 4, marked  # batch, eval run, study create, study generate (+ data, judge)


class _Args:
    """Every option set to a URL, so the marked handler's endpoint function finds one."""

    def __getattr__(self, name: str) -> object:
        return URL if name in ("endpoint", "base_url") else None

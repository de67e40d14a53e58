"""The ``asclepius quantize`` command group, driven through argparse as the app CLI drives it."""

from __future__ import annotations

import argparse
import builtins
import json

import pytest

from quantize import cli
from quantize.errors import MissingExtraError, VerificationFailed


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="asclepius")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_convert_quantize_inspect_verify(tiny_checkpoint, tmp_path, capsys):
    ckpt = tiny_checkpoint("mistral")
    f16 = tmp_path / "m-f16.gguf"
    assert (
        run(
            [
                "quantize",
                "convert",
                str(ckpt),
                "-o",
                str(f16),
                "--outtype",
                "f16",
                "--license",
                "apache-2.0",
                "--base-model",
                "mistral-7b-v0.3",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    assert run(["quantize", "convert", str(ckpt), "-o", str(f16)]) == 2  # usage: the output exists
    assert "already exists; pass --force" in capsys.readouterr().err

    assert run(["quantize", "quantize", str(f16), "-t", "q8_0", "-t", "Q4_K_M", "--threads", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "m-q8_0.gguf" in out and "m-q4_k_m.gguf" in out and "manifest.json" in out

    assert run(["quantize", "inspect", str(f16), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert meta["general.license"] == "apache-2.0"
    assert meta["general.base_model.0.name"] == "mistral-7b-v0.3"
    assert meta["asclepius.prompt_style"] == "asclepius"

    assert run(["quantize", "inspect", str(tmp_path / "m-q4_k_m.gguf"), "--tensors"]) == 0
    assert "blk.1.ffn_down.weight" in capsys.readouterr().out

    notes = tmp_path / "notes.txt"
    notes.write_text("Patient is a 67 yo F with CHF, EF 35%.\n  Started on furosemide 40 mg PO daily.\n" * 40)
    rc = run(
        [
            "quantize",
            "verify",
            str(f16),
            str(tmp_path / "m-q8_0.gguf"),
            "--checkpoint",
            str(ckpt),
            "--notes",
            str(notes),
            "--prompts",
            "1",
            "--max-tokens",
            "48",
            "--ppl-tokens",
            "600",
            "--ctx",
            "128",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "tokenizer parity: 1 notes" in out and "| m-q8_0.gguf | MOSTLY_Q8_0 |" in out
    assert "verify: PASS" in out


def test_verify_fails_with_exit_4_on_the_wrong_checkpoint(tiny_checkpoint, tmp_path, capsys):
    run(["quantize", "convert", str(tiny_checkpoint("llama1")), "-o", str(tmp_path / "a.gguf"), "--outtype", "f32"])
    notes = tmp_path / "n.txt"
    notes.write_text("BP 120/80, HR 72.")
    rc = run(
        [
            "quantize",
            "verify",
            str(tmp_path / "a.gguf"),
            "--checkpoint",
            str(tiny_checkpoint("mistral")),
            "--notes",
            str(notes),
            "--prompts",
            "1",
            "--max-tokens",
            "16",
        ]
    )
    assert rc == VerificationFailed.exit_code == 4
    out = capsys.readouterr().out
    assert "verify: FAIL" in out and "PASS" not in out.splitlines()[-1]


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert run(["quantize", "convert", str(tmp_path), "-o", str(tmp_path / "x.gguf")]) == 4  # model problem
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json is missing" in err
    assert run(["quantize", "inspect", str(tmp_path / "nothing.gguf")]) == 4
    assert "no such file" in capsys.readouterr().err


def test_missing_extra_is_reported_with_exit_2(tmp_path, capsys, monkeypatch):
    real_find = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda m: None if m == "torch" else real_find(m))
    assert run(["quantize", "convert", str(tmp_path)]) == MissingExtraError.exit_code
    err = capsys.readouterr().err
    assert "needs the quantize extra: pip install 'asclepius-desk[quantize]'" in err and "torch" in err


def test_import_error_inside_a_handler_is_the_same_message(tiny_llama_gguf, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_transformers(name, *a, **kw):
        if name.startswith("transformers"):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    monkeypatch.setattr(cli, "_missing", lambda needs: [])
    rc = run(["quantize", "verify", str(tiny_llama_gguf), "--checkpoint", str(tmp_path)])
    assert rc == MissingExtraError.exit_code
    assert "needs the quantize extra" in capsys.readouterr().err


def test_quantize_package_never_imports_qt_or_torch_at_import_time():
    import subprocess
    import sys

    code = (
        "import sys, quantize.cli, quantize.convert, quantize.verify, quantize.quant, quantize.gguf_io; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'PySide6') "
        "or m.startswith('app.qt')]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("cmd", ["convert", "quantize", "verify", "inspect"])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        run(["quantize", cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: asclepius quantize " + cmd in capsys.readouterr().out

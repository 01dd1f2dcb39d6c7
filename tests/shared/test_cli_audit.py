"""``bwc audit verify`` on files it cannot use: exit 2 with a message, never a traceback; a
good file verifies with no database or network at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwc.audit_chain import Anchor, anchor_line, canonical, entry_line, link_hash
from bwc.cli.main import main as bwc


def _write_chain(path: Path, n: int) -> str:
    lines, prev = [anchor_line(Anchor.genesis())], bytes(32)
    for seq in range(1, n + 1):
        body = canonical({"id": f"e{seq}", "data": {"actor": "rita"}})
        digest = link_hash(prev, body)
        lines.append(entry_line(seq, prev, digest, body))
        prev = digest
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return prev.hex()


def test_a_good_file_verifies_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = _write_chain(tmp_path / "chain.jsonl", 5)
    assert bwc(["audit", "verify", str(tmp_path / "chain.jsonl"), "--head", f"5:{head}"]) == 0
    assert f"ok: 5 entries from anchor seq 0, head 5:{head}" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "message"), [
    ("", "line 1: not an export header"),
    ('{"format": "something-else"}\n', "must declare format"),
    (anchor_line(Anchor.genesis()) + "\n{\"seq\": 1}\n", "line 2: not an audit entry"),
])
def test_an_unusable_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "chain.jsonl"
    path.write_text(content, encoding="utf-8")
    assert bwc(["audit", "verify", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_and_a_bad_head_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bwc(["audit", "verify", str(tmp_path / "absent.jsonl")]) == 2
    _write_chain(tmp_path / "chain.jsonl", 1)
    assert bwc(["audit", "verify", str(tmp_path / "chain.jsonl"), "--head", "abc"]) == 2
    assert "--head must be HASH or SEQ:HASH" in capsys.readouterr().err


def test_export_needs_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BWC_TOKEN", raising=False)
    assert bwc(["audit", "export", str(tmp_path / "out.jsonl")]) == 2
    assert "auditor token" in capsys.readouterr().err

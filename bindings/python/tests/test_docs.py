"""The Python README against the installed module: its example runs as written, and every option
of `mqlite.open`, `Store.queue` and `Store.subscribe` and every public member of `Store` is
documented there."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import mqlite

README = Path(__file__).resolve().parent.parent / "README.md"


def _documented(name: str, text: str) -> bool:
    # Written as code: `name`, `name=…`, `store.name(…)`, or `name` inside a longer code span.
    return re.search(r"`[^`]*\b" + re.escape(name) + r"\b[^`]*`", text) is not None


def _keywords(func: Callable[..., object]) -> list[str]:
    sig = inspect.signature(func)
    return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]


@pytest.mark.parametrize(
    "func",
    [mqlite.open, mqlite.Store.queue, mqlite.Store.subscribe],
    ids=["open", "Store.queue", "Store.subscribe"],
)
def test_every_option_is_documented(func: Callable[..., object]) -> None:
    text = README.read_text(encoding="utf-8")
    names = _keywords(func)
    assert names, "the signature lists no keyword options"
    missing = [n for n in names if not _documented(n, text)]
    assert not missing, f"{README} does not document {missing}"


def test_every_store_member_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    names = [n for n in dir(mqlite.Store) if not n.startswith("_")]
    assert "recovery_report" in names
    missing = [n for n in names if not _documented(f"store.{n}", text)]
    assert not missing, f"{README} does not document Store.{missing}"


def test_the_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)  # it creates its store in the current directory
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out.splitlines()
    # It sends two messages, prints the async send's id, then each message it consumed and acked.
    assert out[0] == "sent 2", out
    assert out[1:] == ["1 b'order #1' {'customer': 42}", "2 b'order #2' {}"], out
    with mqlite.open(tmp_path / "demo-store") as store:
        assert store.queue("orders").stats()["messages"] == 0


def _stub_doc(cls: str, method: str) -> str:
    import ast

    stub = Path(mqlite.__file__).resolve().parent / "_mqlite.pyi"
    for node in ast.parse(stub.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == method:
                    return ast.get_docstring(f) or ""
    raise AssertionError(f"the stub has no {cls}.{method}")


def test_every_stats_key_is_documented(tmp_path: Path) -> None:
    """Every key `stats()` returns (store, queue, subscription, topic) is named in the method's
    docstring, in the .pyi stub's, and in the README, with its unit (issue 15)."""
    readme = README.read_text(encoding="utf-8")
    with mqlite.open(tmp_path / "s") as store:
        q = store.queue("q")
        sub = store.subscribe("t.>", name="sub", durable=True)
        t = store.topic("t.x")
        t.publish(b"x")
        cases = [
            ("Queue", q.stats()),
            ("Queue", sub.stats()),
            ("Topic", t.stats()),
            ("Store", store.stats()["q"]),
        ]
        for cls, stats in cases:
            method = getattr(getattr(mqlite, cls), "stats")
            for where, doc in [("docstring", method.__doc__ or ""), ("stub", _stub_doc(cls, "stats")), ("README", readme)]:
                missing = [k for k in stats if not re.search(r"`+" + re.escape(k) + r"`+", doc)]
                assert not missing, f"{cls}.stats {where} does not document {missing}"
            doc = method.__doc__ or ""
            assert "since the store was opened" in doc, doc
            if "bytes" in stats:
                assert re.search(r"``bytes``[^.]*in bytes|bytes``: bytes", doc), doc

"""No page shows the code's vocabulary: no feature's column name, no `as_of`, money with its
currency. Needs `wording.register(templates.env, settings)` in the pages' set-up."""

from __future__ import annotations

import html
import re

import httpx
import pyarrow.parquet as pq
import pytest
from homes import served_home

from churnlens.features.registry import load_all
from conftest import serve, stop


def _text(page: str) -> str:
    """What a reader sees: no tags, no attribute values, no style."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_no_page_shows_a_column_name_and_money_has_its_currency(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    home, keys = served_home(tmp_path_factory, "words")
    account = pq.read_table(next((home / "scores").glob("*.parquet")),
                            columns=["account_id"]).column(0)[0].as_py()
    columns = [name for name in load_all() if "_" in name]
    process, base = serve(home, env={"CHURNLENS_CURRENCY": "EUR"})
    try:
        with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as client:
            assert client.post("/login", data={"key": keys["whatif"]}).status_code == 200
            for path in ("/", f"/accounts/{account}", "/model"):
                answer = client.get(path)
                assert answer.status_code == 200, path
                text = _text(answer.text)
                assert not re.search(r"\bas_of\b", text), path
                shown = [n for n in columns if re.search(rf"\b{n}\b", text)]
                assert not shown, (path, shown)
                assert not re.search(r"\b1 days\b|\bcurrency per\b", text), path
            assert "€" in _text(client.get(f"/accounts/{account}").text)
            assert "€" in _text(client.get("/").text)
    finally:
        stop(process)

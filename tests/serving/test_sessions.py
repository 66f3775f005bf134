"""Page sessions end on the server: a copied cookie is worth nothing after sign-out; the
cookie can be marked Secure; another site cannot post the forms (CSRF).

The real app in process over an empty home (no model: a signed-in page answers the
"no model yet" page with 503, a signed-out one redirects to the sign-in page), so no training
is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnlens.serving.app import create_app
from churnlens.serving.keys import KeyStore
from churnlens.settings import Settings

SAME_SITE = {"Origin": "http://testserver"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def key(home: Path) -> str:
    return KeyStore(home / "api_keys.json").create("csm", "read")[1]


@pytest.fixture
def client(home: Path, key: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home)), follow_redirects=False) as client:
        yield client


def signed_in(client: TestClient, cookie: str) -> bool:
    """Whether ``cookie`` signs a browser in: the portfolio answers instead of the redirect."""
    client.cookies.clear()
    client.cookies.set("churnlens_session", cookie)
    answer = client.get("/")
    assert answer.status_code in (303, 503), answer.text
    return answer.status_code == 503


def test_a_copied_cookie_signs_nobody_in_after_logout(client: TestClient, key: str) -> None:
    login = client.post("/login", data={"key": key}, headers=SAME_SITE)
    assert login.status_code == 303
    cookie = login.cookies["churnlens_session"]
    assert signed_in(client, cookie)

    client.cookies.set("churnlens_session", cookie)
    assert client.post("/logout", headers=SAME_SITE).status_code == 303

    assert not signed_in(client, cookie)  # replayed: the session has ended on the server
    again = client.post("/login", data={"key": key}, headers=SAME_SITE)
    assert signed_in(client, again.cookies["churnlens_session"])  # a new sign-in works


def test_sessions_are_shared_by_every_worker_and_expire(home: Path, key: str,
                                                        client: TestClient) -> None:
    cookie = client.post("/login", data={"key": key},
                         headers=SAME_SITE).cookies["churnlens_session"]
    with TestClient(create_app(Settings(home=home)), follow_redirects=False) as other:
        assert signed_in(other, cookie)  # another process reads the same store
        client.cookies.set("churnlens_session", cookie)
        client.post("/logout", headers=SAME_SITE)
        assert not signed_in(other, cookie)  # and sees the sign-out

    store = client.app.state.serving.sessions  # type: ignore[attr-defined]
    store.lifetime_seconds = -1  # every session opened now has already expired
    expired = client.post("/login", data={"key": key},
                          headers=SAME_SITE).cookies["churnlens_session"]
    assert not signed_in(client, expired)


def test_a_login_posted_from_another_site_is_refused(client: TestClient, key: str) -> None:
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"},
                    {"Origin": "http://testserver.evil.example"}):
        refused = client.post("/login", data={"key": key}, headers=headers)
        assert refused.status_code == 403, (headers, refused.text)
        assert "another site" in refused.text
        assert "churnlens_session" not in refused.cookies  # nobody was signed in
    behind_proxy = client.post("/login", data={"key": key},
                               headers={"Origin": "https://churn.example.com",
                                        "X-Forwarded-Host": "churn.example.com"})
    assert behind_proxy.status_code == 303


def test_the_other_forms_refuse_another_site_too(client: TestClient, key: str) -> None:
    cookie = client.post("/login", data={"key": key},
                         headers=SAME_SITE).cookies["churnlens_session"]
    client.cookies.set("churnlens_session", cookie)
    forged = {"Origin": "http://evil.example"}
    assert client.post("/accounts/a1/what-if", data={}, headers=forged).status_code == 403
    assert client.post("/logout", headers=forged).status_code == 403
    assert signed_in(client, cookie)  # the forged sign-out did not end the session


def test_the_cookie_is_secure_when_the_setting_says_so(home: Path, key: str) -> None:
    for secure in (False, True):
        with TestClient(create_app(Settings(home=home, secure_cookies=secure)),
                        base_url="https://testserver") as client:
            login = client.post("/login", data={"key": key},
                                headers={"Origin": "https://testserver"},
                                follow_redirects=False)
            header = login.headers["set-cookie"].lower()
            assert "httponly" in header and "samesite=strict" in header
            assert ("; secure" in header) is secure, header

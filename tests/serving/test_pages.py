"""The CSM pages in headless Chromium (Debian's, driven by Selenium) against a real server.

A screenshot of each page lands in ``tests/screenshots/`` (or ``$CHURNLENS_SCREENSHOTS``).
`make browsers` (run by `make test`) installs chromium and chromium-driver.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from browser import chromium, sign_in
from churnlens.serving import pages
from conftest import FAST_TRAIN, churnlens, serve, stop

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("CHURNLENS_SCREENSHOTS",
                                  Path(__file__).resolve().parents[1] / "screenshots"))
HOSTILE_NAME = "<script>alert('x')</script> & Sons"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("pages")
    churnlens(home, "synth", "--accounts", "300", "--months", "16", "--seed", "4",
              "--rollouts", "2")
    accounts = pq.read_table(home / "raw" / "accounts.parquet")
    names = accounts.column("name").to_pylist()
    names[0] = HOSTILE_NAME  # must be shown as text, never run
    pq.write_table(accounts.set_column(accounts.schema.get_field_index("name"), "name",
                                       pa.array(names)), home / "raw" / "accounts.parquet")
    churnlens(home, "features")
    churnlens(home, "train", env=FAST_TRAIN)
    keys = {scope: churnlens(home, "keys", "create", "--name", f"csm-{scope}", "--scope",
                             scope).stdout.strip().splitlines()[-1]
            for scope in ("read", "whatif")}
    process, base = serve(home)
    deadline = time.monotonic() + 120
    while httpx.get(base + "/v1/kpis", headers={"X-API-Key": keys["read"]}
                    ).status_code != 200:
        assert time.monotonic() < deadline, "the KPIs were never computed"
        time.sleep(0.5)
    yield {"home": home, "base": base, "keys": keys,
           "hostile_id": accounts.column("account_id")[0].as_py()}
    stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as chrome:
        yield chrome


def _shot(browser: webdriver.Chrome, name: str) -> None:
    height = browser.execute_script("return document.body.scrollHeight")
    width = browser.get_window_size()["width"]
    browser.set_window_size(width, min(max(height + 120, 600), 4000))
    assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _arrive(browser: webdriver.Chrome, part: str) -> None:
    """Wait for the navigation a click started: the old page's elements are still there
    until the new one has loaded."""
    WebDriverWait(browser, 15).until(expected_conditions.url_contains(part))
    assert part in browser.current_url


def _sign_in(browser: webdriver.Chrome, site: dict[str, Any], scope: str) -> None:
    sign_in(browser, site["base"], site["keys"][scope])


def test_sign_in_filter_open_an_account_what_if_and_the_model(
        browser: webdriver.Chrome, site: dict[str, Any]) -> None:
    browser.get(site["base"] + "/login")
    browser.find_element(By.ID, "key").send_keys("cl_wrong")
    browser.find_element(By.ID, "sign-in").click()
    assert "unknown or revoked" in browser.find_element(By.ID, "login-error").text

    _sign_in(browser, site, "whatif")
    cookie = browser.get_cookie("churnlens_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    kpis = browser.find_elements(By.CSS_SELECTOR, ".kpi")
    assert len(kpis) >= 10 and any("%" in k.text for k in kpis)
    assert browser.find_elements(By.CSS_SELECTOR, ".kpi svg.spark")
    everyone = browser.find_element(By.ID, "match-count").text
    _shot(browser, "portfolio")

    Select(browser.find_element(By.ID, "filter-tier")).select_by_value("high")
    browser.find_element(By.ID, "apply-filters").click()
    _arrive(browser, "tier=high")
    badges = browser.find_elements(By.CSS_SELECTOR, "#accounts tbody .tier")
    assert badges and {b.text for b in badges} == {"high"}
    assert browser.find_element(By.ID, "match-count").text != everyone

    browser.find_elements(By.CSS_SELECTOR, "#accounts .account-link")[0].click()
    _arrive(browser, "/accounts/")
    before = browser.find_element(By.ID, "churn-probability").text
    drivers = browser.find_elements(By.CSS_SELECTOR, "#drivers li")
    assert drivers and all(d.text for d in drivers)
    # the riskiest account: what would help, each change recomputed by the model, with its play
    helps = browser.find_elements(By.CSS_SELECTOR, "#improvements li")
    assert helps and all("churn risk would fall from" in h.text and "playbook:" in h.text
                         for h in helps)
    assert browser.find_elements(By.CSS_SELECTOR, "#context li")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4
    _shot(browser, "account")

    fields = browser.find_elements(By.CSS_SELECTOR, "form.what-if input")
    assert fields
    for field in fields:  # push every number far from where it is
        current = float(field.get_attribute("value") or 0)
        field.clear()
        field.send_keys(str(current * 10 + 50))
    browser.find_element(By.ID, "run-what-if").click()
    _arrive(browser, "/what-if")
    after = browser.find_element(By.ID, "what-if-churn").text
    assert after.endswith("%") and after != before, (before, after)
    _shot(browser, "what-if")

    browser.find_element(By.LINK_TEXT, "Model").click()
    _arrive(browser, "/model")
    assert browser.find_element(By.ID, "model-version").text == "v1"
    images = browser.find_elements(By.CSS_SELECTOR, "figure img")
    assert images
    for image in images:  # lazy images load as they are scrolled to: wait for each
        browser.execute_script("arguments[0].scrollIntoView()", image)
        WebDriverWait(browser, 30).until(lambda b, image=image: b.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    assert "PSI" in browser.find_element(By.ID, "drift").text
    assert browser.find_element(By.ID, "segments").text.startswith("Segments")
    _shot(browser, "model")


def test_biggest_drops_first_and_what_changed(browser: webdriver.Chrome,
                                             site: dict[str, Any]) -> None:
    _sign_in(browser, site, "read")
    WebDriverWait(browser, 60).until(  # the server explains the table in the background
        lambda b: b.get(site["base"] + "/") or "explaining live" not in b.page_source)
    Select(browser.find_element(By.ID, "filter-sort")).select_by_value("drop")
    browser.find_element(By.ID, "apply-filters").click()
    _arrive(browser, "sort=drop")
    assert "biggest health drop first" in browser.find_element(By.ID, "match-count").text
    assert browser.find_element(By.ID, "arr-at-risk").text.replace(",", "").startswith("$")
    assert browser.find_element(By.ID, "arr-at-risk").text.replace(",", "")[1:].isdigit()
    changes = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.change")]
    numbers = [float(text) for text in changes if text != "new"]
    assert numbers and numbers[0] < 0 and numbers == sorted(numbers)
    browser.find_elements(By.CSS_SELECTOR, "#accounts .account-link")[0].click()
    _arrive(browser, "/accounts/")
    section = browser.find_element(By.ID, "what-changed")
    assert "What changed since" in section.text
    assert browser.find_element(By.ID, "change-summary").text.startswith(
        f"Health fell {-numbers[0]:.1f} points")
    movers = browser.find_elements(By.CSS_SELECTOR, "#change-drivers li")
    assert movers and "(was " in movers[0].text
    _shot(browser, "what-changed")


def test_churn_before_renewal_first_and_when(browser: webdriver.Chrome,
                                            site: dict[str, Any]) -> None:
    _sign_in(browser, site, "read")
    Select(browser.find_element(By.ID, "filter-sort")).select_by_value("renewal")
    browser.find_element(By.ID, "apply-filters").click()
    _arrive(browser, "sort=renewal")
    assert "before renewal first" in browser.find_element(By.ID, "match-count").text
    outlook = browser.find_element(By.ID, "forecast").text
    assert "gross retention" in outlook and "net retention" in outlook and "90% interval" in outlook
    assert browser.find_element(By.ID, "expansion-arr").text.replace(",", "").startswith("$")
    assert browser.find_element(By.ID, "expansion-arr").text.replace(",", "")[1:].isdigit()
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "td.before-renewal")]
    shown = [int(text.split("%")[0]) for text in cells if "%" in text]
    assert shown and shown == sorted(shown, reverse=True) and shown[0] > 0
    browser.find_elements(By.CSS_SELECTOR, "#accounts .account-link")[0].click()
    _arrive(browser, "/accounts/")
    assert browser.find_element(By.ID, "coverage").text.startswith("The model saw ")
    summary = browser.find_element(By.ID, "timing-summary").text
    assert "chance it churns before" in summary and "Within 30 days" in summary
    bars = browser.find_elements(By.CSS_SELECTOR, "#timing .bar-row")
    months = [int(bar.text.split()[-1].rstrip("%")) for bar in bars]
    assert len(months) == 3 and months == sorted(months)  # cumulative: never falls
    assert browser.find_element(By.ID, "churn-probability").text == f"{months[-1]}%"
    assert browser.find_element(By.ID, "before-renewal").text == f"{shown[0]}%"
    _shot(browser, "when")

    # the model page: the timing model's figures, and the forecast's backtest once it ran
    browser.get(site["base"] + "/model")
    assert "as served" in browser.find_element(By.ID, "timing-metrics").text
    peers = browser.find_element(By.ID, "baselines").text  # the training report's RFM peers
    assert "this model" in peers and "recency" in peers and "LightGBM" in peers
    assert "churnlens forecast" in browser.find_element(By.ID, "forecast-backtest").text
    churnlens(site["home"], "forecast", "--quarters", "3")
    browser.get(site["base"] + "/model")
    cells = browser.find_elements(By.CSS_SELECTOR, "#forecast-backtest td.coverage")
    assert len(cells) >= 2 and all(c.text.endswith("%") for c in cells)


def _money(text: str) -> float:
    return float(text.replace(",", "").lstrip("$"))


def test_most_arr_at_risk_first_unassigned_accounts_and_lifetime_value(
        browser: webdriver.Chrome, site: dict[str, Any]) -> None:
    _sign_in(browser, site, "read")
    Select(browser.find_element(By.ID, "filter-sort")).select_by_value("arr_at_risk")
    browser.find_element(By.ID, "apply-filters").click()
    _arrive(browser, "sort=arr_at_risk")
    assert "most ARR at risk first" in browser.find_element(By.ID, "match-count").text
    at_risk = [_money(c.text) for c in browser.find_elements(By.CSS_SELECTOR, "td.arr-at-risk")]
    assert len(at_risk) > 10 and at_risk == sorted(at_risk, reverse=True) and at_risk[0] > 0
    assert all(_money(c.text) > 0 for c in browser.find_elements(By.CSS_SELECTOR, "td.arr"))
    everyone = int(browser.find_element(By.ID, "match-count").text.split()[0])

    Select(browser.find_element(By.ID, "filter-csm")).select_by_value("unassigned")
    browser.find_element(By.ID, "apply-filters").click()
    _arrive(browser, "csm=unassigned")
    unassigned = int(browser.find_element(By.ID, "match-count").text.split()[0])
    assert 0 < unassigned < everyone
    by_csm = browser.find_elements(By.CSS_SELECTOR, "#value-by-csm tbody tr")
    assert [row.text.split()[0] for row in by_csm] == ["unassigned"]  # the filter's book only
    assert by_csm[0].text.split()[1] == str(unassigned)
    _shot(browser, "unassigned")

    browser.find_elements(By.CSS_SELECTOR, "#accounts .account-link")[0].click()
    _arrive(browser, "/accounts/")
    assert "CSM" not in browser.find_element(By.ID, "account-name").text
    assert _money(browser.find_element(By.ID, "lifetime-value").text) > 0
    assert _money(browser.find_element(By.ID, "expected-revenue").text) > 0
    assert browser.find_element(By.ID, "risk").text.startswith("Risk")


def test_a_narrow_screen_and_names_shown_as_text(browser: webdriver.Chrome,
                                                 site: dict[str, Any]) -> None:
    _sign_in(browser, site, "read")
    browser.set_window_size(390, 844)
    browser.get(site["base"] + "/?q=" + "script")
    links = browser.find_elements(By.CSS_SELECTOR, "#accounts .account-link")
    assert [link.text for link in links] == [HOSTILE_NAME]
    assert "&lt;script&gt;" in browser.page_source  # escaped, so it never ran
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than a phone"
    _shot(browser, "portfolio-narrow")
    browser.get(f"{site['base']}/accounts/{site['hostile_id']}")
    assert browser.find_element(By.ID, "account-name").text.startswith(HOSTILE_NAME)
    assert "whatif" in browser.find_element(By.ID, "what-if").text  # a read key cannot
    browser.set_window_size(1280, 1000)


def test_the_kpi_endpoint_filters_months_and_refuses_a_bad_one(site: dict[str, Any]) -> None:
    headers = {"X-API-Key": site["keys"]["read"]}
    every = httpx.get(site["base"] + "/v1/kpis", headers=headers).json()
    months = [m["month"] for m in every["months"]]
    assert len(months) >= 12 and set(every["definitions"]) >= {"grr", "nrr", "nps"}
    assert all(0 <= m["logo_churn_rate"] <= 1 for m in every["months"][1:])
    some = httpx.get(site["base"] + "/v1/kpis", headers=headers,
                     params={"from": months[2][:7], "to": months[4][:7]}).json()
    assert [m["month"] for m in some["months"]] == months[2:5]
    bad = httpx.get(site["base"] + "/v1/kpis", headers=headers, params={"from": "soon"})
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["detail"]
    assert httpx.get(site["base"] + "/v1/kpis").status_code == 401


def test_pages_degrade_with_a_message(site: dict[str, Any], tmp_path: Path) -> None:
    with httpx.Client(base_url=site["base"]) as client:
        client.post("/login", data={"key": site["keys"]["read"]})
        unknown = client.get("/accounts/acc_nobody")
        assert unknown.status_code == 404 and "Unknown account" in unknown.text
        assert "Traceback" not in unknown.text
        nowhere = client.get("/no/such/page", headers={"Accept": "text/html"})
        assert nowhere.status_code == 404 and "There is no page" in nowhere.text
        assert unknown.headers["content-security-policy"].startswith("default-src 'none'")

    empty = tmp_path / "empty"  # a fresh project: keys, but no history, model or snapshot
    key = churnlens(empty, "keys", "create", "--name", "early").stdout.strip().splitlines()[-1]
    process, base = serve(empty, ready=(200, 503))
    try:
        with httpx.Client(base_url=base) as client:
            signed = client.post("/login", data={"key": key}, follow_redirects=True)
            assert signed.status_code == 503
            assert "No model yet" in signed.text and "churnlens train" in signed.text
            api = client.get("/v1/accounts", headers={"X-API-Key": key})
            assert api.status_code == 503 and "churnlens train" in api.json()["detail"]
            assert client.get("/readyz").json()["ready"] is False
    finally:
        stop(process)


def test_every_page_forbids_framing_and_sniffing_and_escapes_names(site: dict[str, Any]
                                                                   ) -> None:
    """The headers and the escaping without a browser, on every kind of page: a hostile name
    arrives as text, and no page may be framed (clickjacking) or read as another type."""
    with httpx.Client(base_url=site["base"]) as client:
        login = client.get("/login")
        client.post("/login", data={"key": site["keys"]["whatif"]})
        pages = [login, client.get("/", params={"q": "script"}),
                 client.get(f"/accounts/{site['hostile_id']}"), client.get("/model"),
                 client.get("/static/app.css"), client.get("/accounts/acc_nobody"),
                 client.post(f"/accounts/{site['hostile_id']}/what-if",
                             data={"mrr": "1e308"})]
    for response in pages:
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert "script-src" not in policy  # no script may run, from anywhere
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    for response in pages[1:3]:
        assert "&lt;script&gt;alert(" in response.text
        assert "<script>" not in response.text


def test_segments_on_the_model_page_worst_ranked_first_flags_marked() -> None:
    def level(auc: float, flags: list[str]) -> dict[str, Any]:
        return {"rows": 300, "rate": 0.1, "mean_prediction": 0.12, "reviewed": True,
                "roc_auc": auc, "flags": flags}

    review = {"churn": {"overall": {"roc_auc": 0.85, "rows": 900.0, "rate": 0.1},
                        "by": {"plan": {"starter": level(0.62, ["Churn model, plan starter: "
                                                                "AUC 0.62"]),
                                        "growth": level(0.88, []),
                                        "tiny": {"rows": 8, "reviewed": False, "flags": []}},
                               "region": {"EMEA": level(0.80, [])}}}}
    rows = pages.segment_rows(review)
    assert [r["segment"] for r in rows] == ["all validation snapshots", "plan starter",
                                            "region EMEA", "plan growth"]
    assert [r["flagged"] for r in rows] == [False, True, False, False]
    assert pages.segment_rows({}) == []

"""The committee's report: the numbers (each card counted once, by the clinician's last action), the page written
by `ivig-cds report` and served at GET /report, looked at in a real headless browser (Debian Chromium driven by
Playwright): the table's numbers, the charts drawn with the right data, and no network needed.

The expected numbers are counted from the seeding plan below, never written out by hand."""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cds_service import cli, report
from cds_service.app import create_app
from cds_service.auth import AuthSettings
from cds_service.config import Settings
from cds_service.knowledge import load
from cds_service.protocol import RequestError
from cds_service.store import FeedbackEntry, Store
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "reviewer-token-for-the-tests-0123456789"
NON_ADHERENCE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
REASONS = {
    "risk": (NON_ADHERENCE, "risk-benefit-ratio", "Recipient assessment of risk/benefit ratio"),
    "expert": (NON_ADHERENCE, "expert-contradicts", None),  # no display: the report shows the code
}
RETIRED = "RETIRED-1"  # a recommendation the current definitions no longer have
TODAY = datetime.now(UTC).date()
PERIOD = report.Period(TODAY - timedelta(days=13), TODAY)


@dataclass(frozen=True)
class Planned:
    """A card shown on a day, then the feedback the clinician sent on it, in order (none: ignored)."""

    uuid: str
    code: str
    day: date
    actions: tuple[tuple[str, str | None, str | None], ...]  # (outcome, reason key, comment)

    @property
    def last(self) -> tuple[str, str | None, str | None] | None:
        return self.actions[-1] if self.actions else None


def plan(codes: list[str]) -> list[Planned]:
    patterns = [
        (),
        (("accepted", None, None),),
        (("overridden", "risk", None),),
        (("overridden", "expert", "IgA deficiency: <b>not</b> a bold claim"),),  # markup must show as text
        (("accepted", None, None), ("overridden", "risk", "changed my mind")),   # the last action counts
        (("overridden", None, "patient declined"),),
    ]
    cards = [Planned(f"card-{i}", (codes + [RETIRED])[i % (len(codes) + 1)], TODAY - timedelta(days=i % 9), patterns[i % len(patterns)])
             for i in range(41)]
    outside = Planned("card-outside", codes[0], PERIOD.since - timedelta(days=1), (("accepted", None, None),))
    return cards + [outside]


def seed(store: Store, planned: list[Planned]) -> None:
    for card in planned:
        shown = datetime.combine(card.day, time(12), UTC)
        store.record_cards("ivig-order-select", "order-select",
                           [{"uuid": card.uuid, "indicator": "warning", "source": {"topic": {"code": card.code}}}], now=shown)
        store.record_feedback([
            FeedbackEntry(card=card.uuid, outcome=outcome, outcome_at=shown + timedelta(minutes=n + 1),
                          override_system=REASONS[reason][0] if reason else None,
                          override_code=REASONS[reason][1] if reason else None,
                          override_display=REASONS[reason][2] if reason else None, override_comment=comment)
            for n, (outcome, reason, comment) in enumerate(card.actions)
        ])


def expected(planned: list[Planned]) -> tuple[dict[str, Counter], dict[str, Counter], dict[date, Counter]]:
    """(outcome counts per code, reason counts per code, outcome counts per day) of the cards in PERIOD."""
    outcomes: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    days: dict[date, Counter] = defaultdict(Counter)
    for card in planned:
        if not PERIOD.since <= card.day <= PERIOD.until:
            continue
        outcome = card.last[0] if card.last else "ignored"
        outcomes[card.code][outcome] += 1
        days[card.day][outcome] += 1
        if outcome == "overridden":
            key = card.last[1]
            reasons[card.code][(REASONS[key][2] or REASONS[key][1]) if key else report.NO_REASON] += 1
    return outcomes, reasons, days


@pytest.fixture(scope="module")
def labels() -> list[tuple[str, str]]:
    return report.recommendation_labels(load(ROOT))


@pytest.fixture()
def seeded(tmp_path, labels) -> tuple[str, list[Planned]]:
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    store = Store(url)
    store.upgrade()
    planned = plan([code for code, _ in labels[:3]])
    seed(store, planned)
    return url, planned


# ---- the numbers ---------------------------------------------------------------------------------------


def test_each_card_counts_once_by_its_last_action(seeded, labels):
    url, planned = seeded
    since, until = PERIOD.bounds()
    summary = report.summarize(Store(url).outcomes(since, until), PERIOD, labels)
    outcomes, reasons, days = expected(planned)
    rows = {row.code: row for row in summary.rows}
    assert [row.code for row in summary.rows][:len(labels)] == [code for code, _ in labels]  # guideline order, all shown
    assert summary.rows[-1].code == RETIRED and rows[RETIRED].label == "(not in the current definitions)"
    for code, counts in outcomes.items():
        row = rows[code]
        assert (row.counts.accepted, row.counts.overridden, row.counts.ignored) == (
            counts["accepted"], counts["overridden"], counts["ignored"]), code
        assert row.counts.shown == sum(counts.values())
        assert row.reasons == reasons[code]
    assert summary.total.shown == sum(sum(c.values()) for c in outcomes.values()) == sum(1 for c in planned if c.uuid != "card-outside")
    assert all(not row.counts.shown for code, row in rows.items() if code not in outcomes)
    assert summary.bucket == "day" and len(summary.trend) == PERIOD.days  # days with no card are zeros, not gaps
    for day, counts in summary.trend:
        assert (counts.accepted, counts.overridden, counts.ignored) == (
            days[day]["accepted"], days[day]["overridden"], days[day]["ignored"])


def test_longer_periods_are_counted_by_week_then_month():
    year = report.Period(date(2025, 1, 1), date(2025, 12, 31))
    assert report.summarize([], year).bucket == "week"
    assert report.summarize([], year).trend[0][0] == date(2024, 12, 30)  # the Monday of the first week
    assert report.summarize([], report.Period(date(2022, 1, 1), date(2025, 12, 31))).bucket == "month"


def test_period_from_the_command_line():
    assert report.Period.parse(None, "2026-03-31") == report.Period(date(2026, 1, 1), date(2026, 3, 31))
    assert report.Period.parse("2026-01-01", None, today=date(2026, 2, 1)).until == date(2026, 2, 1)
    for since, until, words in (("2026-13-01", None, "since must be a date"), (None, "31/03/2026", "until must be a date"),
                                ("2026-04-01", "2026-03-01", "starts (2026-04-01) after it ends")):
        with pytest.raises(RequestError, match=re.escape(words)):
            report.Period.parse(since, until, today=date(2026, 5, 1))


# ---- the page in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.is_file():
        pytest.fail(f"Debian Chromium is missing at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(the report is checked in a real browser, driven by Playwright; no browser is downloaded)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


def cell(page, code: str, column: str) -> str:
    return page.locator(f'#by-recommendation tr[data-code="{code}"] td[data-col="{column}"]').inner_text()


def check_page(page, planned: list[Planned]) -> None:
    """What a reviewer sees: the table's numbers, the override reasons and comments, and three drawn charts whose
    data are the same numbers."""
    outcomes, reasons, days = expected(planned)
    assert page.locator("#since").inner_text() == PERIOD.since.isoformat()
    for code, counts in outcomes.items():
        for column in ("accepted", "overridden", "ignored"):
            assert cell(page, code, column) == str(counts[column]), (code, column)
        assert cell(page, code, "shown") == str(sum(counts.values()))
        for reason, n in reasons[code].items():
            assert f"{reason}: {n}" in cell(page, code, "reasons")
    total = sum(sum(c.values()) for c in outcomes.values())
    assert cell(page, "*total*", "shown") == str(total)
    assert page.locator("#comments li").filter(has_text="IgA deficiency: <b>not</b> a bold claim").count() > 0
    assert page.locator("#comments b").count() == 0  # a comment's markup is text, not markup

    for name in ("outcomes", "reasons", "trend"):
        plot = page.locator(f"#plot-{name}")
        assert plot.locator(".main-svg").count() > 0, f"{name}: plotly drew nothing"
        drawn = plot.locator("g.point path").evaluate_all("ps => ps.filter(p => p.getBBox().width * p.getBBox().height > 0).length")
        assert drawn > 0, f"{name}: no bar has an area"
    traces = page.evaluate("() => Object.fromEntries(['outcomes', 'trend'].map(id => [id, document.getElementById('plot-' + id)"
                           ".data.map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)}))]))")
    for trace in traces["outcomes"]:  # horizontal: y = recommendation codes, x = counts
        assert dict(zip(trace["y"], trace["x"], strict=True)) == {code: outcomes[code][trace["name"]] for code in outcomes}
    for trace in traces["trend"]:
        shown = dict(zip(trace["x"], trace["y"], strict=True))
        assert shown == {(PERIOD.since + timedelta(days=n)).isoformat(): days[PERIOD.since + timedelta(days=n)][trace["name"]]
                         for n in range(PERIOD.days)}
    reason_bars = page.evaluate("() => document.getElementById('plot-reasons').data"
                                ".map(t => ({name: t.name, y: Array.from(t.y), x: Array.from(t.x)}))")
    for trace in reason_bars:
        assert {r: n for r, n in zip(trace["y"], trace["x"], strict=True) if n} == dict(reasons[trace["name"]])


def open_page(context, url: str, **kwargs):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    response = page.goto(url, **kwargs)
    page.wait_for_selector("#plot-trend .main-svg")
    return page, response, errors


def test_the_report_file_shows_the_numbers_and_charts_with_no_network(seeded, browser, tmp_path, monkeypatch, capsys):
    url, planned = seeded
    monkeypatch.setenv("IVIG_CDS_STORE_URL", url)
    monkeypatch.setenv("IVIG_CDS_KNOWLEDGE_ROOT", str(ROOT))
    out = tmp_path / "report.html"
    assert cli.main(["report", "--since", PERIOD.since.isoformat(), "--until", PERIOD.until.isoformat(), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().err
    context = browser.new_context(offline=True)  # nothing may come from the network
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page, _, errors = open_page(context, out.as_uri())
    check_page(page, planned)
    assert errors == [] and all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    context.close()


def test_the_report_command_refuses_a_store_that_does_not_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IVIG_CDS_STORE_URL", f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert cli.main(["report", "--out", str(tmp_path / "r.html")]) == 2
    assert "creates it on its first start" in capsys.readouterr().err and not (tmp_path / "none.sqlite3").exists()
    monkeypatch.setenv("IVIG_CDS_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    Store(f"sqlite:///{tmp_path / 'store.sqlite3'}").upgrade()
    assert cli.main(["report", "--since", "2026-05-01", "--until", "2026-04-01", "--out", str(tmp_path / "r.html")]) == 2
    assert "after it ends" in capsys.readouterr().err


@pytest.fixture()
def served(seeded) -> Iterator[tuple[str, list[Planned]]]:
    """The service in production mode (a CDS client JWT needed for every hook endpoint) with a reviewer token,
    on a real HTTP server on a free loopback port."""
    url, planned = seeded
    app = create_app(Settings(knowledge_root=ROOT, store_url=url, reviewer_token=TOKEN))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", planned
    finally:
        server.shutdown()
        thread.join()


def test_the_served_report_asks_a_browser_for_the_reviewer_credential(served, browser):
    base, planned = served
    query = f"/report?since={PERIOD.since}&until={PERIOD.until}"
    context = browser.new_context(http_credentials={"username": "committee", "password": TOKEN})
    page, response, errors = open_page(context, base + query)
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    check_page(page, planned)
    assert errors == []
    context.close()
    context = browser.new_context(http_credentials={"username": "committee", "password": TOKEN[:-1] + "x"})
    page = context.new_page()
    assert page.goto(base + query).status == 401
    context.close()


def test_the_report_route_needs_the_token_and_does_not_exist_without_one(seeded):
    url, _ = seeded
    closed = create_app(Settings(knowledge_root=ROOT, store_url=url)).test_client()
    assert closed.get("/report", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    client = create_app(Settings(knowledge_root=ROOT, store_url=url, reviewer_token=TOKEN)).test_client()
    assert client.post("/cds-services/ivig-order-select", json={}).status_code == 401  # hook calls still need a CDS client JWT
    for headers in ({}, {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": "Basic !!!"},
                    {"Authorization": f"Token {TOKEN}"}):
        response = client.get("/report", headers=headers)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
        assert response.get_json()["resourceType"] == "OperationOutcome"
    ok = client.get(f"/report?since={PERIOD.since}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.mimetype == "text/html" and f"<b id=\"since\">{PERIOD.since}</b>" in ok.get_data(as_text=True)
    bad = client.get("/report?since=yesterday", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "since must be a date" in bad.get_json()["issue"][0]["diagnostics"]


def test_development_mode_does_not_open_the_report(seeded):
    url, _ = seeded
    client = create_app(Settings(knowledge_root=ROOT, store_url=url, mode="development", auth=AuthSettings.development())).test_client()
    assert client.get("/report").status_code == 404


def test_an_empty_period_says_so(tmp_path, browser, labels):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.upgrade()
    out = tmp_path / "empty.html"
    out.write_text(report.build(store, PERIOD, labels), encoding="utf-8")
    context = browser.new_context(offline=True)
    page, _, errors = open_page(context, out.as_uri())
    assert cell(page, "*total*", "shown") == "0" and errors == []
    assert page.locator("#plot-outcomes").get_by_text("No card was shown in this period").count() == 1
    assert page.locator("#plot-reasons").get_by_text("No card was overridden in this period").count() == 1
    assert page.locator("#no-cards li").count() == len(labels)
    context.close()

"""The CDS committee's report: per recommendation and over a period, cards shown, accepted, overridden and
ignored, the override reasons, and the trend, as a table and as charts.

Why this shape: the committee decides whether a recommendation stays on. A recommendation clinicians override
again and again, for the same reason, is one to look at; one nobody acts on is noise. So each card counts once,
by what the clinician last did with it (a card ignored at first may be acted on later), and a card with no
feedback counts as ignored.

The page is one self-contained HTML file: the charts are Plotly figures with plotly.js inlined, so it opens
from a file or an e-mail attachment with no network. The same page is served at GET /report (report_api.py).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import plotly.io as pio

from .errors import RequestError
from .store import CardOutcome, Store

if TYPE_CHECKING:
    from .knowledge import KnowledgeBase

#: the period a report covers when none is given
DEFAULT_DAYS = 90
#: at most this many comments are listed per recommendation (the newest are not singled out: they are in time order)
MAX_COMMENTS = 100
COLOURS = {"accepted": "#2e7d32", "overridden": "#e65100", "ignored": "#9e9e9e"}
OUTCOMES = ("accepted", "overridden", "ignored")
NO_REASON = "(no reason given)"


@dataclass(frozen=True)
class Period:
    """Whole UTC days, both ends included."""

    since: date
    until: date

    def __post_init__(self) -> None:
        if self.since > self.until:
            raise RequestError(f"the period starts ({self.since}) after it ends ({self.until})")

    @classmethod
    def parse(cls, since: str | None, until: str | None, *, today: date | None = None) -> Period:
        """From YYYY-MM-DD strings; until defaults to today (UTC), since to DEFAULT_DAYS days before until."""
        end = _day(until, "until") if until else (today or datetime.now(UTC).date())
        start = _day(since, "since") if since else end - timedelta(days=DEFAULT_DAYS - 1)
        return cls(start, end)

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) as aware UTC datetimes."""
        return (datetime.combine(self.since, time(), UTC), datetime.combine(self.until + timedelta(days=1), time(), UTC))

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise RequestError(f"{name} must be a date as YYYY-MM-DD, not {value[:40]!r}") from exc


@dataclass
class Counts:
    accepted: int = 0
    overridden: int = 0
    ignored: int = 0

    @property
    def shown(self) -> int:
        return self.accepted + self.overridden + self.ignored

    def add(self, outcome: str | None) -> None:
        name = outcome if outcome in ("accepted", "overridden") else "ignored"
        setattr(self, name, getattr(self, name) + 1)

    def share(self, outcome: str) -> str:
        return f"{100 * getattr(self, outcome) / self.shown:.0f} %" if self.shown else "–"


@dataclass
class Row:
    """One recommendation's line of the report."""

    code: str
    label: str
    counts: Counts = field(default_factory=Counts)
    reasons: Counter[str] = field(default_factory=Counter)
    comments: list[tuple[str, str]] = field(default_factory=list)  # (reason, comment)


@dataclass(frozen=True)
class Summary:
    period: Period
    rows: list[Row]
    total: Counts
    trend: list[tuple[date, Counts]]
    bucket: str  # day | week | month


def recommendation_labels(knowledge: KnowledgeBase) -> list[tuple[str, str]]:
    """(code, display) of every recommendation, in the guideline's order: the rows of the report."""
    labels: dict[str, str] = {}
    for rec in knowledge.recommendations:
        code = rec.topic.get("code", "")
        labels.setdefault(code, rec.topic.get("display") or rec.title)
    return list(labels.items())


def summarize(outcomes: Iterable[CardOutcome], period: Period, labels: Sequence[tuple[str, str]] = ()) -> Summary:
    """Counts per recommendation (known ones in `labels` order, each shown even with no cards; codes the
    knowledge no longer has after them), the override reasons, and counts per day, week or month."""
    rows = {code: Row(code, label) for code, label in labels}
    total = Counts()
    bucket = "day" if period.days <= 62 else "week" if period.days <= 731 else "month"
    trend: dict[date, Counts] = {start: Counts() for start in _buckets(period, bucket)}
    for card in outcomes:
        row = rows.get(card.recommendation)
        if row is None:
            row = rows[card.recommendation] = Row(card.recommendation, "(not in the current definitions)")
        row.counts.add(card.outcome)
        total.add(card.outcome)
        trend.setdefault(_bucket_of(card.shown_at.date(), bucket), Counts()).add(card.outcome)
        if card.outcome == "overridden":
            reason = _reason_label(card)
            row.reasons[reason] += 1
            if card.override_comment:
                row.comments.append((reason, card.override_comment))
    listed = {code for code, _ in labels}
    known = [rows[code] for code in dict(labels)]
    unknown = sorted((r for code, r in rows.items() if code not in listed), key=lambda r: r.code)
    return Summary(period, known + unknown, total, sorted(trend.items()), bucket)


def _reason_label(card: CardOutcome) -> str:
    if card.override_code is None:
        return NO_REASON
    return card.override_display or card.override_code


def _bucket_of(day: date, bucket: str) -> date:
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())  # the Monday
    return day.replace(day=1)


def _buckets(period: Period, bucket: str) -> list[date]:
    """Every bucket of the period, so that a week with no cards shows as zero, not as a gap."""
    starts: list[date] = []
    day = period.since
    while day <= period.until:
        start = _bucket_of(day, bucket)
        if not starts or starts[-1] != start:
            starts.append(start)
        day += timedelta(days=1)
    return starts


# ---- charts --------------------------------------------------------------------------------------------


def _layout(figure: go.Figure, title: str, height: int, *, empty: str | None = None) -> go.Figure:
    """The charts' common look; `empty` is said across a chart with nothing to draw, so it is not taken for a fault."""
    if empty:
        figure.add_annotation(text=empty, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 16})
    figure.update_layout(title=title, barmode="stack", height=height, template="plotly_white",
                         margin={"l": 90, "r": 20, "t": 60, "b": 50}, legend={"orientation": "h", "y": -0.15, "traceorder": "normal"})
    return figure


def outcome_chart(summary: Summary) -> go.Figure:
    """A horizontal stacked bar per recommendation that had cards: accepted, overridden, ignored."""
    rows = [r for r in summary.rows if r.counts.shown][::-1]  # plotly draws the first category at the bottom
    figure = go.Figure([
        go.Bar(name=outcome, orientation="h", y=[r.code for r in rows], x=[getattr(r.counts, outcome) for r in rows],
               marker_color=COLOURS[outcome], customdata=[r.label for r in rows],
               hovertemplate="%{customdata}<br>" + outcome + ": %{x}<extra></extra>")
        for outcome in OUTCOMES
    ])
    return _layout(figure, "Cards by recommendation and outcome", max(300, 120 + 28 * len(rows)),
                   empty=None if rows else "No card was shown in this period")


def reason_chart(summary: Summary) -> go.Figure:
    """Override reasons, one bar each, stacked by recommendation."""
    reasons = Counter[str]()
    for row in summary.rows:
        reasons.update(row.reasons)
    order = [reason for reason, _ in reasons.most_common()][::-1]
    figure = go.Figure([
        go.Bar(name=row.code, orientation="h", y=order, x=[row.reasons.get(reason, 0) for reason in order],
               hovertemplate=row.code + "<br>%{y}: %{x}<extra></extra>")
        for row in summary.rows if row.reasons
    ])
    figure.update_yaxes(automargin=True)
    return _layout(figure, "Override reasons", max(300, 140 + 36 * len(order)),
                   empty=None if order else "No card was overridden in this period")


def trend_chart(summary: Summary) -> go.Figure:
    """Cards per day, week or month, stacked by outcome."""
    starts = [start.isoformat() for start, _ in summary.trend]
    figure = go.Figure([
        go.Bar(name=outcome, x=starts, y=[getattr(counts, outcome) for _, counts in summary.trend],
               marker_color=COLOURS[outcome], hovertemplate=f"{summary.bucket} of %{{x}}<br>{outcome}: %{{y}}<extra></extra>")
        for outcome in OUTCOMES
    ])
    figure.update_xaxes(type="category" if summary.bucket != "day" else "date")
    return _layout(figure, f"Cards per {summary.bucket}", 380)


# ---- the page ------------------------------------------------------------------------------------------


def render(summary: Summary, *, generated_at: datetime | None = None) -> str:
    """The whole page, plotly.js inlined once."""
    charts = [("outcomes", outcome_chart(summary)), ("reasons", reason_chart(summary)), ("trend", trend_chart(summary))]
    figures = "\n".join(
        f'<section class="chart" id="chart-{name}">'
        + pio.to_html(figure, full_html=False, include_plotlyjs=i == 0, div_id=f"plot-{name}",
                      config={"displaylogo": False, "responsive": True})
        + "</section>"
        for i, (name, figure) in enumerate(charts)
    )
    period = summary.period
    generated = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    total = summary.total
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>IVIG-CDS: cards and feedback, {period.since} to {period.until}</title>
<style>{_CSS}</style></head>
<body>
<h1>IVIG-CDS: cards and feedback</h1>
<p class="period">Cards shown from <b id="since">{period.since}</b> to <b id="until">{period.until}</b> (UTC days, both
included). Generated {generated}.</p>
<p>Each card counts once, by what the clinician last did with it as the EHR reported it: <b>accepted</b> (the card,
or one of its suggestions), <b>overridden</b> (dismissed, with or without a reason), or <b>ignored</b> (shown, and no
feedback came). How much an EHR reports differs between EHRs: many ignored cards can also mean the EHR sends no
feedback.</p>
<p class="totals" id="totals">{total.shown} cards shown: {total.accepted} accepted, {total.overridden} overridden,
{total.ignored} ignored.</p>
<div class="charts">
{figures}
</div>
{_table(summary)}
{_reasons(summary)}
</body></html>
"""


def _table(summary: Summary) -> str:
    """Recommendations that had cards, in the guideline's order; the others named below it, folded away."""
    lines = []
    for row in (r for r in summary.rows if r.counts.shown):
        c = row.counts
        reasons = "; ".join(f"{html.escape(reason)}: {n}" for reason, n in row.reasons.most_common())
        lines.append(
            f'<tr data-code="{html.escape(row.code)}">'
            f'<th scope="row"><span class="code">{html.escape(row.code or "(none)")}</span> {html.escape(row.label)}</th>'
            f'<td data-col="shown">{c.shown}</td><td data-col="accepted">{c.accepted}</td>'
            f'<td data-col="overridden">{c.overridden}</td><td data-col="ignored">{c.ignored}</td>'
            f'<td data-col="accepted-share">{c.share("accepted")}</td><td data-col="overridden-share">{c.share("overridden")}</td>'
            f'<td data-col="reasons">{reasons}</td></tr>'
        )
    quiet = [row for row in summary.rows if not row.counts.shown]
    folded = "" if not quiet else (
        f'<details id="no-cards"><summary>{len(quiet)} recommendations showed no card in this period</summary><ul>'
        + "".join(f'<li data-code="{html.escape(r.code)}"><span class="code">{html.escape(r.code)}</span> {html.escape(r.label)}</li>'
                  for r in quiet)
        + "</ul></details>")
    t = summary.total
    return f"""<table id="by-recommendation">
<caption>Per recommendation, in the guideline's order</caption>
<thead><tr><th scope="col">Recommendation</th><th scope="col">Shown</th><th scope="col">Accepted</th>
<th scope="col">Overridden</th><th scope="col">Ignored</th><th scope="col">Accepted %</th><th scope="col">Overridden %</th>
<th scope="col">Override reasons</th></tr></thead>
<tbody>
{chr(10).join(lines)}
</tbody>
<tfoot><tr data-code="*total*"><th scope="row">All recommendations</th><td data-col="shown">{t.shown}</td>
<td data-col="accepted">{t.accepted}</td><td data-col="overridden">{t.overridden}</td><td data-col="ignored">{t.ignored}</td>
<td data-col="accepted-share">{t.share("accepted")}</td><td data-col="overridden-share">{t.share("overridden")}</td><td></td></tr></tfoot>
</table>
{folded}"""


def _reasons(summary: Summary) -> str:
    """The clinicians' own words, per recommendation: what a count of reasons cannot say."""
    sections = []
    for row in summary.rows:
        if not row.comments:
            continue
        items = "".join(f"<li><i>{html.escape(reason)}</i>: {html.escape(comment)}</li>" for reason, comment in row.comments[:MAX_COMMENTS])
        more = len(row.comments) - MAX_COMMENTS
        sections.append(f'<h3 data-code="{html.escape(row.code)}">{html.escape(row.code)} {html.escape(row.label)}</h3>'
                        f"<ul>{items}</ul>" + (f"<p>and {more} more.</p>" if more > 0 else ""))
    if not sections:
        return '<h2>Override comments</h2><p id="no-comments">No override in this period came with a comment.</p>'
    return '<h2>Override comments</h2><div id="comments">' + "".join(sections) + "</div>"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #212121; }
table { border-collapse: collapse; width: 100%; margin: 1.5em 0; font-size: 0.92em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.5em; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.35em 0.5em; vertical-align: top; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td[data-col=reasons] { text-align: left; }
th[scope=row] { text-align: left; font-weight: normal; }
details { color: #616161; margin-bottom: 1.5em; }
tfoot th, tfoot td { font-weight: 600; border-top: 2px solid #616161; }
.code { font-family: ui-monospace, monospace; font-weight: 600; }
.chart { margin: 1em 0; }
"""


def build(store: Store, period: Period, labels: Sequence[tuple[str, str]], *, generated_at: datetime | None = None) -> str:
    """The report page for this store and period."""
    since, until = period.bounds()
    return render(summarize(store.outcomes(since, until), period, labels), generated_at=generated_at)

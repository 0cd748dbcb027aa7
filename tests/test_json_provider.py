"""The app's JSON answers (json_provider.py): orjson where it writes what Flask's own provider writes, Flask's
provider wherever it would not; a client reads the same values, keys in the same order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from hypothesis import given

from cds_service.json_provider import JsonProvider


@dataclass
class Point:
    x: int


class Word(str):
    pass


def pairs(body: bytes) -> Any:
    """The JSON value with every object as its list of (key, value) pairs: equal only when the keys' order is too."""
    return json.loads(body, object_pairs_hook=list)


def answers(value: Any) -> tuple[bytes, bytes]:
    app = Flask(__name__)
    flask_own = DefaultJSONProvider(app)
    flask_own.sort_keys = False
    return JsonProvider(app).response(value).get_data(), flask_own.response(value).get_data()


# finite numbers only: requests with NaN or Infinity are refused (protocol.load_json) and the service computes none
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text() | st.decimals(allow_nan=False, allow_infinity=False) | st.datetimes(timezones=st.just(UTC)) | st.dates()
           | st.builds(Word, st.text()) | st.builds(Point, st.integers()))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=20)


@given(values)
def test_the_app_writes_the_json_flask_writes(value):
    ours, flask_own = answers(value)
    assert pairs(ours) == pairs(flask_own)


def test_a_hook_answer_is_written_by_orjson_and_what_it_would_write_otherwise_by_flask():
    """orjson writes non-ASCII text as UTF-8 (Flask escapes it): the sign that it wrote the answer; a date, which
    orjson would write otherwise than Flask (an HTTP date), sends the whole answer to Flask's provider."""
    card = {"summary": "Guillain-Barré syndrome — Level A", "indicator": "info"}
    ours, flask_own = answers({"cards": [card]})
    assert "é".encode() in ours and b"\\u00e9" in flask_own and pairs(ours) == pairs(flask_own)
    ours, flask_own = answers({"cards": [card], "when": datetime(2026, 12, 2, tzinfo=UTC), "day": date(2026, 12, 2),
                               "dose": Decimal("0.4")})
    assert ours == flask_own

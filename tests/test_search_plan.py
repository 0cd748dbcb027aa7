"""search_plan: Observation searches that differ only in their codes go as one, and each key gets its own answer,
checked against a real local HTTP server (tests/fhir_stub_server.py) through prefetch.resolve."""
from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from cds_service import search_plan
from cds_service.prefetch import resolve
from tests.fhir_stub_server import FhirStub, searchset

WEIGHT = "Observation?patient=123&code=http://loinc.org|29463-7&_sort=-date&_count=1"
LABS = "Observation?patient=123&code=http://loinc.org|2160-0,http://loinc.org|718-7&_sort=-date&_count=3"
MERGED = "Observation?patient=123&code=http://loinc.org|29463-7,http://loinc.org|2160-0,http://loinc.org|718-7&_sort=-date&_count=4"
TEMPLATES = {"weight": WEIGHT.replace("123", "{{context.patientId}}"), "labs": LABS.replace("123", "{{context.patientId}}")}


class Req:
    def __init__(self, base: str) -> None:
        self.fhir_server = base
        self.fhir_authorization = None
        self.prefetch: dict = {}

    def context_value(self, name: str) -> str | None:
        return "123" if name == "patientId" else None


def obs(id: str, code: str, day: int) -> dict:
    return {"resourceType": "Observation", "id": id, "status": "final", "effectiveDateTime": f"2026-01-{day:02d}",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]}}


@pytest.fixture
def fhir() -> Iterator[FhirStub]:
    with FhirStub() as stub:
        yield stub


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def test_count_limited_observation_searches_merge_with_the_sum_of_their_counts() -> None:
    searches = search_plan.plan({"patient": "Patient/123", "weight": WEIGHT, "labs": LABS})
    assert [(s.keys, unquote(s.url)) for s in searches] == [(("patient",), "Patient/123"), (("weight", "labs"), MERGED)]


@pytest.mark.parametrize("queries", [
    {"weight": WEIGHT, "labs": LABS.replace("&_count=3", "")},                      # one reads all pages, one does not
    {"weight": WEIGHT, "labs": LABS.replace("_sort=-date", "_sort=date")},          # other order
    {"weight": WEIGHT, "labs": LABS.replace("patient=123", "patient=456")},         # other patient
    {"weight": WEIGHT, "labs": LABS.replace("code=", "code:not=")},                 # a modifier
    {"weight": WEIGHT, "conditions": "Condition?patient=123&code=x&_sort=-date&_count=3"},  # another type
    {"a": "Observation?patient=123&code=x&_count=1", "b": "Observation?patient=123&code=y&_count=1"},  # no order
])
def test_searches_that_would_not_give_the_same_answers_stay_apart(queries: dict[str, str]) -> None:
    assert [s.url for s in search_plan.plan(queries)] == list(queries.values())


def test_uncounted_observation_searches_merge_and_read_every_page() -> None:
    queries = {"a": "Observation?patient=123&code=x,y", "b": "Observation?patient=123&code=y,z"}
    [search] = search_plan.plan(queries)
    assert unquote(search.url) == "Observation?patient=123&code=x,y,z"


def test_each_key_gets_its_own_answer_from_the_merged_search(fhir: FhirStub) -> None:
    newest_first = [obs("l1", "2160-0", 20), obs("w1", "29463-7", 19), obs("l2", "718-7", 18), obs("w2", "29463-7", 17)]
    fhir.add(MERGED, searchset(newest_first))
    got = resolve(Req(fhir.base_url), TEMPLATES, timeout=2)
    assert ids(got["weight"]) == ["w1"]
    assert ids(got["labs"]) == ["l1", "l2"]
    assert [unquote(r.target) for r in fhir.requests] == [MERGED]


def test_a_key_crowded_out_of_the_merged_page_is_asked_on_its_own(fhir: FhirStub) -> None:
    """Four labs newer than any weight fill the merged page (count 4): only the weight's own search can tell."""
    labs = [obs(f"l{n}", "2160-0", 20 - n) for n in range(4)]
    fhir.add(MERGED, searchset(labs, next_url=f"{fhir.base_url}?page=2"))
    fhir.add(WEIGHT, searchset([obs("w-old", "29463-7", 1)]))
    got = resolve(Req(fhir.base_url), TEMPLATES, timeout=2)
    assert ids(got["weight"]) == ["w-old"]
    assert ids(got["labs"]) == ["l0", "l1", "l2"]
    assert [unquote(r.target) for r in fhir.requests] == [MERGED, WEIGHT]


def test_a_whole_merged_result_needs_no_second_search(fhir: FhirStub) -> None:
    fhir.add(MERGED, searchset([obs("l1", "2160-0", 20)]))
    got = resolve(Req(fhir.base_url), TEMPLATES, timeout=2)
    assert ids(got["weight"]) == [] and ids(got["labs"]) == ["l1"]
    assert len(fhir.requests) == 1

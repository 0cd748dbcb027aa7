"""prefetch.resolve / render and FhirClient against a real local HTTP server (tests/fhir_stub_server.py)."""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from cds_service.fhir_client import FhirClient, FhirReadError
from cds_service.prefetch import DataUnavailable, render, resolve

try:
    from fhir_stub_server import FhirStub, operation_outcome, searchset
except ImportError:  # tests/ imported as a package
    from tests.fhir_stub_server import FhirStub, operation_outcome, searchset

TOKEN = "s3cr3t-access-token-4711"
PATIENT = {"resourceType": "Patient", "id": "123"}
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "weight": "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7&_sort=-date&_count=1",
}
WEIGHT_QUERY = "Observation?patient=123&code=http://loinc.org|29463-7&_sort=-date&_count=1"


# ---- a request with the attributes of protocol.HookRequest (duck typed) ----------------------

@dataclass(frozen=True)
class Auth:
    access_token: str
    token_type: str = "Bearer"


@dataclass(frozen=True)
class Req:
    fhir_server: str | None
    fhir_authorization: Auth | None = Auth(TOKEN)
    prefetch: Mapping[str, Any] = field(default_factory=dict)
    patient_id: str = "123"
    user_id: str | None = "Practitioner/abc"
    encounter_id: str | None = None
    hook: str = "order-select"
    hook_instance: str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    selections: tuple[str, ...] = ("MedicationRequest/ivig-1",)
    draft_orders: tuple[dict, ...] = ()

    def context_value(self, name: str) -> str | None:
        return {"patientId": self.patient_id, "userId": self.user_id,
                "encounterId": self.encounter_id}.get(name)


@pytest.fixture
def fhir() -> Iterator[FhirStub]:
    with FhirStub() as stub:
        yield stub


@pytest.fixture
def elsewhere() -> Iterator[FhirStub]:
    """A second server (another port, so another origin) that must never see the token."""
    with FhirStub() as stub:
        yield stub


def serve_all(fhir: FhirStub) -> None:
    fhir.add("Patient/123", PATIENT)
    fhir.add("Condition?patient=123", searchset([{"resourceType": "Condition", "id": "c1"}]))
    fhir.add(WEIGHT_QUERY, searchset([{"resourceType": "Observation", "id": "w1"}]))


def unavailable(request: Req, templates: Mapping[str, str] = TEMPLATES, **kw: Any) -> DataUnavailable:
    with pytest.raises(DataUnavailable) as info:
        resolve(request, templates, timeout=kw.pop("timeout", 2.0), **kw)
    text = str(info.value) + json.dumps(info.value.operation_outcome())
    assert TOKEN not in text
    return info.value


# ---- prefetch cases -------------------------------------------------------------------------

def test_prefetched_values_are_used_without_calling_the_server(fhir: FhirStub) -> None:
    sent = {"patient": PATIENT, "conditions": searchset([]), "weight": searchset([{"resourceType": "Observation"}])}
    assert resolve(Req(fhir.base_url, prefetch=sent), TEMPLATES, timeout=2) == sent
    assert fhir.requests == []


def test_null_means_no_data_and_is_not_fetched(fhir: FhirStub) -> None:
    sent = {"patient": PATIENT, "conditions": None, "weight": None}
    assert resolve(Req(None, None, prefetch=sent), TEMPLATES, timeout=2) == sent
    assert fhir.requests == []


def test_absent_keys_are_fetched_with_the_bearer_token(fhir: FhirStub) -> None:
    serve_all(fhir)
    got = resolve(Req(fhir.base_url, prefetch={"patient": PATIENT}), TEMPLATES, timeout=2)
    assert got["patient"] == PATIENT
    assert got["conditions"]["entry"][0]["resource"]["id"] == "c1"
    assert got["weight"]["entry"][0]["resource"]["id"] == "w1"
    assert list(got) == list(TEMPLATES)
    assert sorted(r.target for r in fhir.requests) == sorted(["Condition?patient=123", WEIGHT_QUERY])
    for r in fhir.requests:
        assert r.headers["authorization"] == f"Bearer {TOKEN}"
        assert r.headers["accept"] == "application/fhir+json"


def test_fhir_server_without_authorization_is_queried_without_token(fhir: FhirStub) -> None:
    serve_all(fhir)
    assert resolve(Req(fhir.base_url, None), {"patient": TEMPLATES["patient"]}, timeout=2) == {"patient": PATIENT}
    assert "authorization" not in fhir.requests[0].headers


def test_operation_outcome_in_prefetch_is_refetched(fhir: FhirStub) -> None:
    serve_all(fhir)
    sent = {"patient": operation_outcome("timeout", "EHR backend slow")}
    got = resolve(Req(fhir.base_url, prefetch=sent), {"patient": TEMPLATES["patient"]}, timeout=2)
    assert got == {"patient": PATIENT}
    assert [r.target for r in fhir.requests] == ["Patient/123"]


def test_non_resource_prefetch_value_is_refetched(fhir: FhirStub) -> None:
    serve_all(fhir)  # the 2.0 spec example sends "user": "123", a bare string
    got = resolve(Req(fhir.base_url, prefetch={"patient": "123"}), {"patient": TEMPLATES["patient"]}, timeout=2)
    assert got == {"patient": PATIENT}


def test_outcome_entries_are_dropped_and_other_entries_kept(fhir: FhirStub) -> None:
    bundle = searchset([{"resourceType": "Condition", "id": "c1"}])
    bundle["entry"].append({"resource": operation_outcome("processing", "unknown param ignored", "warning"),
                            "search": {"mode": "outcome"}})
    got = resolve(Req(None, None, prefetch={"conditions": bundle}), {"conditions": TEMPLATES["conditions"]}, timeout=2)
    assert [e["resource"]["id"] for e in got["conditions"]["entry"]] == ["c1"]
    assert fhir.requests == []


def test_searchset_reporting_an_error_is_not_read_as_no_data(fhir: FhirStub) -> None:
    """A search whose outcome says it failed may be empty or partial: a missed diagnosis would be a wrong card."""
    bundle = searchset([])
    bundle["entry"] = [{"resource": operation_outcome("exception", "condition search failed"), "search": {"mode": "outcome"}}]
    err = unavailable(Req(None, None, prefetch={"conditions": bundle}), {"conditions": TEMPLATES["conditions"]})
    assert "condition search failed" in err.reasons["conditions"]
    fhir.add("Condition?patient=123", bundle)
    err = unavailable(Req(fhir.base_url), {"conditions": TEMPLATES["conditions"]})
    assert "reported an error" in err.reasons["conditions"]


def test_template_with_unfilled_token_gives_none_without_fetching(fhir: FhirStub) -> None:
    got = resolve(Req(fhir.base_url), {"encounter": "Encounter/{{context.encounterId}}"}, timeout=2)
    assert got == {"encounter": None}
    assert fhir.requests == []


# ---- 412: DataUnavailable -------------------------------------------------------------------

def test_no_fhir_server_lists_every_missing_key() -> None:
    sent = {"patient": PATIENT, "conditions": operation_outcome("exception", "search failed")}
    err = unavailable(Req(None, None, prefetch=sent))
    assert set(err.reasons) == {"conditions", "weight"}
    assert "no fhirServer" in err.reasons["weight"] and "not prefetched" in err.reasons["weight"]
    assert "search failed" in err.reasons["conditions"]
    outcome = err.operation_outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"]) for i in outcome["issue"]] == [("error", "not-found")] * 2
    assert "'conditions'" in outcome["issue"][0]["diagnostics"]


def test_401_is_unavailable_and_the_token_is_not_leaked(fhir: FhirStub) -> None:
    fhir.add("Patient/123", operation_outcome("login", "token expired"), status=401)
    err = unavailable(Req(fhir.base_url), {"patient": TEMPLATES["patient"]})
    assert "HTTP 401" in err.reasons["patient"]
    assert err.codes == {"patient": "exception"}


def test_404_on_read_is_no_data(fhir: FhirStub) -> None:
    assert resolve(Req(fhir.base_url), {"patient": TEMPLATES["patient"]}, timeout=2) == {"patient": None}
    assert [r.target for r in fhir.requests] == ["Patient/123"]


def test_404_on_search_is_an_error(fhir: FhirStub) -> None:
    err = unavailable(Req(fhir.base_url), {"conditions": TEMPLATES["conditions"]})
    assert "HTTP 404" in err.reasons["conditions"]


def test_500_is_unavailable_and_good_keys_do_not_hide_it(fhir: FhirStub) -> None:
    serve_all(fhir)
    fhir.add("Condition?patient=123", operation_outcome(), status=500)
    err = unavailable(Req(fhir.base_url))
    assert list(err.reasons) == ["conditions"]
    assert "HTTP 500" in err.reasons["conditions"]


@pytest.mark.parametrize("raw, why", [
    (b"<html>Bad gateway</html>", "not JSON"),
    (b'{"resourceType": "Patient", "id": ', "not JSON"),
    (b'{"id": "123"}', "not a FHIR resource"),
    (b'["Patient"]', "not a FHIR resource"),
])
def test_malformed_body_is_unavailable(fhir: FhirStub, raw: bytes, why: str) -> None:
    fhir.add("Patient/123", raw=raw)
    err = unavailable(Req(fhir.base_url), {"patient": TEMPLATES["patient"]})
    assert why in err.reasons["patient"]
    assert err.codes == {"patient": "exception"}


@pytest.mark.integration  # starts a process or a server (tests/tiers.py)
def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    err = unavailable(Req(f"http://127.0.0.1:{port}/fhir"), {"patient": TEMPLATES["patient"]})
    assert "unreachable" in err.reasons["patient"]


def test_timeout(fhir: FhirStub) -> None:
    fhir.add("Patient/123", PATIENT, delay=5)
    started = time.monotonic()
    err = unavailable(Req(fhir.base_url), {"patient": TEMPLATES["patient"]}, timeout=0.5)
    elapsed = time.monotonic() - started
    assert err.codes == {"patient": "timeout"}
    assert "0.5s" in err.reasons["patient"]
    assert 0.45 <= elapsed < 1.0


def test_slow_keys_are_fetched_in_parallel_within_about_one_timeout(fhir: FhirStub) -> None:
    timeout = 0.5
    templates = {f"slow{n}": f"Observation?patient={{{{context.patientId}}}}&n={n}" for n in range(6)}
    for n in range(6):
        fhir.add(f"Observation?patient=123&n={n}", searchset([]), delay=5)
    started = time.monotonic()
    err = unavailable(Req(fhir.base_url), templates, timeout=timeout)
    elapsed = time.monotonic() - started
    print(f"\n6 slow keys, timeout {timeout}s: resolve took {elapsed:.3f}s")
    assert set(err.codes.values()) == {"timeout"} and len(err.codes) == 6
    assert elapsed < 2 * timeout  # serially it would be 6 timeouts


def test_keys_queued_behind_busy_workers_do_not_extend_the_wall_time(fhir: FhirStub) -> None:
    templates = {f"slow{n}": f"Observation?patient={{{{context.patientId}}}}&n={n}" for n in range(3)}
    for n in range(3):
        fhir.add(f"Observation?patient=123&n={n}", searchset([]), delay=5)
    started = time.monotonic()
    err = unavailable(Req(fhir.base_url), templates, timeout=0.3, max_workers=2)
    assert time.monotonic() - started < 0.6
    assert err.codes == {"slow0": "timeout", "slow1": "timeout", "slow2": "timeout"}


def test_several_slow_but_successful_keys_take_one_delay_not_the_sum(fhir: FhirStub) -> None:
    templates = {f"k{n}": f"Observation?patient={{{{context.patientId}}}}&n={n}" for n in range(4)}
    for n in range(4):
        fhir.add(f"Observation?patient=123&n={n}", searchset([{"resourceType": "Observation", "id": str(n)}]),
                 delay=0.4)
    started = time.monotonic()
    got = resolve(Req(fhir.base_url), templates, timeout=2)
    elapsed = time.monotonic() - started
    assert [v["entry"][0]["resource"]["id"] for v in got.values()] == ["0", "1", "2", "3"]
    assert elapsed < 1.0  # serially 1.6 s


# ---- paging ---------------------------------------------------------------------------------

def conditions(*ids: str) -> list[dict]:
    return [{"resourceType": "Condition", "id": i} for i in ids]


def test_paged_search_is_merged_and_token_sent_to_every_page(fhir: FhirStub) -> None:
    fhir.add_pages("Condition?patient=123", [conditions("c1", "c2"), conditions("c3")])
    got = resolve(Req(fhir.base_url), {"conditions": TEMPLATES["conditions"]}, timeout=2)["conditions"]
    assert [e["resource"]["id"] for e in got["entry"]] == ["c1", "c2", "c3"]
    assert got["type"] == "searchset" and got["total"] == 3
    assert all(link["relation"] != "next" for link in got.get("link", []))
    assert [r.target for r in fhir.requests] == ["Condition?patient=123", "?_getpages=p2"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in fhir.requests)


def test_paginated_prefetch_bundle_is_completed_from_fhir_server(fhir: FhirStub) -> None:
    fhir.add("?_getpages=p2", searchset(conditions("c3")))
    sent = {"conditions": searchset(conditions("c1", "c2"), next_url=f"{fhir.base_url}?_getpages=p2")}
    got = resolve(Req(fhir.base_url, prefetch=sent), {"conditions": TEMPLATES["conditions"]}, timeout=2)
    assert [e["resource"]["id"] for e in got["conditions"]["entry"]] == ["c1", "c2", "c3"]
    assert [r.target for r in fhir.requests] == ["?_getpages=p2"]


def test_paginated_prefetch_bundle_without_fhir_server_is_unavailable() -> None:
    sent = {"conditions": searchset(conditions("c1"), next_url="https://ehr.example/fhir?_getpages=p2")}
    err = unavailable(Req(None, None, prefetch=sent), {"conditions": TEMPLATES["conditions"]})
    assert "next link" in err.reasons["conditions"] and "no fhirServer" in err.reasons["conditions"]


def test_a_search_limited_with_count_reads_only_its_first_page(fhir: FhirStub) -> None:
    """`_sort=-date&_count=1` asks for the latest weight; the next pages hold older ones."""
    weights = [[{"resourceType": "Observation", "id": f"w{n}"}] for n in range(12)]
    fhir.add_pages(WEIGHT_QUERY, weights)
    got = resolve(Req(fhir.base_url), {"weight": TEMPLATES["weight"]}, timeout=2)["weight"]
    assert [e["resource"]["id"] for e in got["entry"]] == ["w0"]
    assert [r.target for r in fhir.requests] == [WEIGHT_QUERY]
    sent = {"weight": searchset([{"resourceType": "Observation", "id": "w0"}], next_url=f"{fhir.base_url}?_getpages=p2")}
    got = resolve(Req(None, None, prefetch=sent), {"weight": TEMPLATES["weight"]}, timeout=2)["weight"]
    assert [e["resource"]["id"] for e in got["entry"]] == ["w0"]


def test_more_pages_than_max_pages_is_an_error(fhir: FhirStub) -> None:
    fhir.add_pages("Condition?patient=123", [conditions(str(n)) for n in range(4)])
    client = FhirClient(fhir.base_url, TOKEN, timeout=2, max_pages=3)
    with pytest.raises(FhirReadError, match="more than 3 pages"):
        client.get("Condition?patient=123")
    assert len(fhir.requests) == 3


# ---- the token goes to the FHIR server base only -------------------------------------------

def test_next_link_to_another_host_is_not_followed(fhir: FhirStub, elsewhere: FhirStub) -> None:
    elsewhere.add("?_getpages=p2", searchset(conditions("evil")))
    fhir.add("Condition?patient=123", searchset(conditions("c1"), next_url=f"{elsewhere.base_url}?_getpages=p2"))
    err = unavailable(Req(fhir.base_url), {"conditions": TEMPLATES["conditions"]})
    assert "not on the FHIR server" in err.reasons["conditions"]
    assert elsewhere.requests == []


def test_next_link_outside_the_base_path_is_not_followed(fhir: FhirStub) -> None:
    fhir.add("Condition?patient=123", searchset(conditions("c1"), next_url=f"{fhir.origin}/other/Condition?p=2"))
    err = unavailable(Req(fhir.base_url), {"conditions": TEMPLATES["conditions"]})
    assert "not on the FHIR server" in err.reasons["conditions"]
    assert len(fhir.requests) == 1


def test_prefetch_bundle_next_link_to_another_host_is_not_followed(fhir: FhirStub, elsewhere: FhirStub) -> None:
    sent = {"conditions": searchset(conditions("c1"), next_url=f"{elsewhere.base_url}?_getpages=p2")}
    err = unavailable(Req(fhir.base_url, prefetch=sent), {"conditions": TEMPLATES["conditions"]})
    assert "not on the FHIR server" in err.reasons["conditions"]
    assert fhir.requests == [] and elsewhere.requests == []


def test_redirect_is_not_followed(fhir: FhirStub, elsewhere: FhirStub) -> None:
    elsewhere.add("Patient/123", PATIENT)
    fhir.add("Patient/123", status=302, headers={"Location": f"{elsewhere.base_url}/Patient/123"})
    err = unavailable(Req(fhir.base_url), {"patient": TEMPLATES["patient"]})
    assert "HTTP 302" in err.reasons["patient"]
    assert elsewhere.requests == []


def test_client_repr_and_errors_do_not_show_the_token(fhir: FhirStub) -> None:
    fhir.add("Patient/123", status=403)
    client = FhirClient(fhir.base_url + "/", TOKEN, timeout=1, session=requests.Session())
    assert TOKEN not in repr(client) and "bearer token" in repr(client)
    with pytest.raises(FhirReadError) as info:
        client.get("Patient/123")
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert info.value.key == "Patient/123" and "HTTP 403" in info.value.reason


# ---- render ---------------------------------------------------------------------------------

@pytest.mark.parametrize("template, user, expected", [
    ("Patient/{{context.patientId}}", "Practitioner/abc", "Patient/123"),
    ("Condition?patient={{ context.patientId }}&encounter={{context.encounterId}}", "Practitioner/abc",
     "Condition?patient=123&encounter=enc-9"),
    ("{{context.userId}}", "PractitionerRole/r1", "PractitionerRole/r1"),
    ("Practitioner/{{userPractitionerId}}", "Practitioner/abc", "Practitioner/abc"),
    ("PractitionerRole?_id={{userPractitionerRoleId}}&_include=PractitionerRole:practitioner",
     "PractitionerRole/r1", "PractitionerRole?_id=r1&_include=PractitionerRole:practitioner"),
    ("Patient/{{userPatientId}}", "Patient/p7", "Patient/p7"),
    ("RelatedPerson/{{userRelatedPersonId}}", "RelatedPerson/rp1", "RelatedPerson/rp1"),
    ("Practitioner/{{userPractitionerId}}", "https://ehr.example/fhir/Practitioner/abc/_history/2", "Practitioner/abc"),
    ("Coverage?patient=Patient/123&status=active", "Practitioner/abc", "Coverage?patient=Patient/123&status=active"),
])
def test_render_tokens(template: str, user: str, expected: str) -> None:
    assert render(template, Req(None, user_id=user, encounter_id="enc-9")) == expected


@pytest.mark.parametrize("template, user", [
    ("Encounter/{{context.encounterId}}", "Practitioner/abc"),        # optional field not sent
    ("Practitioner/{{userPractitionerId}}", "PractitionerRole/r1"),   # user is of another type
    ("Patient/{{userPatientId}}", None),
    ("X?s={{context.selections}}", "Practitioner/abc"),               # not a primitive: no value
])
def test_render_absent_token_gives_none(template: str, user: str | None) -> None:
    assert render(template, Req(None, user_id=user)) is None


@pytest.mark.parametrize("template", [
    "Medication/{{context.medication.id}}",
    "Observation?date=gt{{today() - 90 days}}",
    "Patient/{{patientId}}",
])
def test_render_rejects_tokens_outside_cds_hooks_2_0(template: str) -> None:
    with pytest.raises(ValueError, match="unsupported prefetch token"):
        render(template, Req(None))


def test_render_percent_encodes_values() -> None:
    assert render("Coverage?patient=Patient/{{context.patientId}}", Req(None, patient_id="a.b-9")) == \
        "Coverage?patient=Patient/a.b-9"
    assert render("Practitioner?x={{context.userId}}", Req(None, user_id="Practitioner/a-1")) == \
        "Practitioner?x=Practitioner/a-1"

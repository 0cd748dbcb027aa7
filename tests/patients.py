"""A catalogue of varied test patients, each with an IVIG order: the records real EHRs send, coded as they code them.

Used where a property must hold on many patients at once rather than on the one an example shows: the second
FHIRPath opinion (tests/test_second_opinion.py), the equivalence of the engine's fast paths, and the card counts a
CDS committee watches. Every patient is one hook request; add patients here, never copies of them elsewhere.
"""

from __future__ import annotations

from typing import Any

from tests.fhir_data import (
    SNOMED,
    administration,
    condition,
    corticosteroid,
    days_ago,
    dosed_ivig_order,
    earlier_ivig_course,
    hook_request,
    ivig_order,
    medication_request,
    observation,
    patient,
    prefetch,
    procedure,
    service_request,
    weight,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
UMOL = "umol/L"
EGFR = "mL/min/{1.73_m2}"


def _egfr(value: float, *, low: float | None = None, when: int = 2) -> dict:
    return observation("98979-8", value, EGFR, low=low, when=days_ago(when))


def _creatinine_umol(value: float, *, high: float | None = None) -> dict:
    return observation("14682-9", value, UMOL, high=high, when=days_ago(3))


def monitoring_labs() -> list[dict]:
    """The results an admission for IVIG usually has: full blood count, liver enzymes, renal function, all normal."""
    return [observation("718-7", 13.5, "g/dL", low=12, high=16, when=days_ago(1)),
            observation("777-3", 250, "10*3/uL", low=150, high=400, when=days_ago(1)),
            observation("1742-6", 24, "U/L", low=7, high=56, when=days_ago(1)),
            _egfr(92, low=60, when=1)]


def _record(conditions: list[dict], *, kg: float | None = 70, weighed: int = 2, labs: list[dict] | None = None,
            born: str = "1970-05-01", **more: Any) -> dict:
    """A record with the usual admission labs unless `labs` says otherwise (`labs=[]`: none on record)."""
    weights = [weight(kg, when=days_ago(weighed))] if kg is not None else []
    labs = monitoring_labs() if labs is None else labs
    return prefetch(conditions=conditions, weights=weights, labs=list(labs), patient_resource=patient(born), **more)


def _select(record: dict, **order: Any) -> dict:
    return hook_request([ivig_order(**order)], prefetch=record)


def _sign(record: dict, **order: Any) -> dict:
    return hook_request([ivig_order(**order)], hook="order-sign", prefetch=record)


def catalogue() -> dict[str, dict]:
    """Name -> hook request, built anew on each call (dates are relative to today)."""
    return {
        "GBS, ICD-10-CM, 5 days from onset": _select(_record([condition("G61.0", onset=days_ago(5))])),
        "GBS, no labs on record": _select(_record([condition("G61.0", onset=days_ago(5))], labs=[])),
        "GBS, platelets low": _select(_record([condition("G61.0", onset=days_ago(5))],
                                               labs=monitoring_labs() + [
                                                   observation("777-3", 60, "10*3/uL", low=150, high=400, when=days_ago(0))])),
        "GBS, SNOMED CT, child of 9": _select(_record([condition("40956001", SNOMED, onset=days_ago(3))], kg=28, born="2017-03-01")),
        "GBS, WHO ICD-10, signed as guideline": _sign(_record([condition("G61.0", ICD10, onset=days_ago(4))]), daily_g=28, days=5),
        "GBS, 2 g/kg in 2 days, signed": _sign(_record([condition("G61.0", onset=days_ago(2))]), daily_g=70, days=2),
        "GBS after plasma exchange": _select(_record([condition("G61.0", onset=days_ago(10))],
                                                      procedures=[procedure("20720000", performed=days_ago(6))])),
        "GBS, second course 3 weeks in": _select(_record([condition("G61.0", onset=days_ago(21))],
                                                          administrations=[administration(when=days_ago(18))])),
        "GBS, course given on the onset day at 10:00": _select(_record([condition("G61.0", onset=days_ago(4))],
                                                                      administrations=[administration(when=days_ago(4) + "T10:00:00Z")])),
        "GBS, onset 63 days ago with a time, earlier course": _select(_record([condition("G61.0", onset=days_ago(63) + "T08:00:00Z")],
                                                                               administrations=[administration(when=days_ago(40))])),
        "GBS, onset known only to the month": _select(_record([condition("G61.0", onset=days_ago(40)[:7])],
                                                               administrations=[administration(when=days_ago(20))])),
        "GBS, plasma exchange 28 days ago with a time, no onset": _select(_record(
            [condition("G61.0")], procedures=[procedure("20720000", performed=days_ago(28) + "T09:00:00Z")])),
        "GBS with methylprednisolone": _select(_record([condition("G61.0", onset=days_ago(2))],
                                                        medications=[corticosteroid("H02AB04", "methylprednisolone")])),
        "GBS, 10-fold overdose, signed": _sign(_record([condition("G61.0", onset=days_ago(2))]), daily_g=280, days=5),
        "GBS, 10-fold daily dose and no number of days, signed": _sign(_record([condition("G61.0", onset=days_ago(2))]), daily_g=280),
        "GBS, two drafts of 100 g without days, signed": hook_request(
            [ivig_order(id="ivig-1", daily_g=100), ivig_order(id="ivig-2", daily_g=100)], hook="order-sign",
            prefetch=_record([condition("G61.0", onset=days_ago(2))])),
        "GBS, dose in mL of a solution, signed": hook_request(
            [dosed_ivig_order(280, "mL", boundsDuration={"value": 5, "unit": "days"})], hook="order-sign",
            prefetch=_record([condition("G61.0", onset=days_ago(2))])),
        "GBS, 140 g every 12 hours, signed": hook_request(
            [dosed_ivig_order(140, "g", period=12, periodUnit="h", count=10)], hook="order-sign",
            prefetch=_record([condition("G61.0", onset=days_ago(2))])),
        "MMN, maintenance 70 g every 3 weeks, 6 times, signed": hook_request(
            [dosed_ivig_order(70, "g", period=3, periodUnit="wk", count=6)], hook="order-sign",
            prefetch=_record([condition("G61.82")], medications=[earlier_ivig_course(21)])),
        "Miller Fisher, SNOMED CT": _select(_record([condition("1767005", SNOMED, onset=days_ago(4))])),
        "CIDP, untreated, ICD-10-CM": _select(_record([condition("G61.81")])),
        "CIDP, WHO ICD-10 G61.8": _select(_record([condition("G61.8", ICD10)])),
        "GBS, no weight on record, 1400 g signed": _sign(_record([condition("G61.0", onset=days_ago(3))], kg=None),
                                                         daily_g=280, days=5),
        "GBS and CIDP both on record": _select(_record([condition("G61.0", onset=days_ago(5)), condition("G61.81")])),
        "GBS and CIDP, 5-fold draft, signed": _sign(_record([condition("G61.0", onset=days_ago(5)), condition("G61.81")]),
                                                    daily_g=140, days=5),
        "CIDP on prednisone, earlier courses": _select(_record([condition("G61.81")], medications=[corticosteroid()],
                                                                administrations=[earlier_ivig_course(28)])),
        "MMN, maintenance": _select(_record([condition("G61.82")], medications=[earlier_ivig_course(30)])),
        "MMN, SNOMED CT, on steroids": _select(_record([condition("230591002", SNOMED)], medications=[corticosteroid()])),
        "Myasthenia, exacerbation G70.01": _select(_record([condition("G70.01")])),
        "Myasthenia, stable G70.00": _select(_record([condition("G70.00")])),
        "Myasthenia, thymectomy planned": _select(_record([condition("G70.00")], service_requests=[service_request("43450002")])),
        "Myasthenia, pregnant": _select(_record([condition("G70.00"), condition("Z33.1")], born="1994-02-02")),
        "Myasthenia, maintenance every 4 weeks": _select(_record([condition("G70.00")],
                                                                 administrations=[administration(when=days_ago(28))])),
        "MS relapsing-remitting, pregnant": _select(_record([condition("G35.A"), condition("Z34.90")], born="1992-06-06")),
        "MS secondary progressive": _select(_record([condition("G35.C1")])),
        "MS with methylprednisolone": _select(_record([condition("G35")], medications=[corticosteroid("H02AB04", "methylprednisolone")])),
        "Neuromyelitis optica, WHO ICD-10": _select(_record([condition("G36.0", ICD10)])),
        "Neuromyelitis optica with an old RRMS code": _select(_record([condition("G36.0"), condition("G35.A")])),
        "MS primary progressive": _select(_record([condition("G35.B0")])),
        "MS relapsing-remitting and primary progressive codes": _select(_record([condition("G35.A"), condition("G35.B0")])),
        "GBS, child of 9, signed 10-fold": _sign(_record([condition("G61.0", onset=days_ago(3))], kg=28, born=days_ago(9 * 365)),
                                                 daily_g=112, days=5),
        "ADEM, child": _select(_record([condition("G04.00")], kg=30, born="2016-09-09")),
        "Limbic encephalitis coded G04.81": _select(_record([condition("G04.81")])),
        "Dermatomyositis on prednisone": _select(_record([condition("M33.10")], medications=[corticosteroid()])),
        "Dermatomyositis, no steroid, neoplastic M36.0": _select(_record([condition("M36.0", ICD10)])),
        "Polymyositis": _select(_record([condition("M33.20")])),
        "Inclusion body myositis": _select(_record([condition("G72.41")])),
        "Dermatomyositis and inclusion body myositis, on prednisone": _select(_record([condition("M33.10"), condition("G72.41")],
                                                                                     medications=[corticosteroid()])),
        "Stiff-person syndrome, SNOMED CT": _select(_record([condition("5217008", SNOMED)])),
        "LEMS, paraneoplastic": _select(_record([condition("G73.1", ICD10)])),
        "Post-polio syndrome": _select(_record([condition("G14")])),
        "MGUS with polyneuropathy G62.9": _select(_record([condition("D47.2"), condition("G62.9")])),
        "MGUS with neuropathy G63": _select(_record([condition("D47.2"), condition("G63")])),
        "Rasmussen encephalitis, child": _select(_record([condition("230191005", SNOMED)], kg=25, born="2018-01-01")),
        "West syndrome, infant": _select(_record([condition("G40.822")], kg=8, born="2026-01-15")),
        "GBS, eGFR 24 with no range": _select(_record([condition("G61.0", onset=days_ago(3))], labs=monitoring_labs()[:3] + [_egfr(24)])),
        "GBS, creatinine 240 umol/L with no range": _select(_record([condition("G61.0", onset=days_ago(3))],
                                                                    labs=monitoring_labs()[:3] + [_creatinine_umol(240)])),
        "GBS, eGFR 78 against a range from 90": _select(_record([condition("G61.0", onset=days_ago(3))],
                                                                labs=monitoring_labs()[:3] + [_egfr(78, low=90)])),
        "GBS, creatinine 2.4 MG/DL written as text, no range": _select(_record(
            [condition("G61.0", onset=days_ago(3))], labs=monitoring_labs()[:3] + [
                observation("2160-0", 2.4, "MG/DL", when=days_ago(1)) | {"valueQuantity": {"value": 2.4, "unit": "MG/DL"}}])),
        "GBS, labs from before the onset": _select(_record(
            [condition("G61.0", onset=days_ago(5))],
            labs=[observation("718-7", 13.5, "g/dL", low=12, high=16, when=days_ago(400)), _egfr(92, low=60, when=400)])),
        "GBS, provisional": _select(_record([condition("G61.0", verification="provisional", onset=days_ago(2))])),
        "GBS encounter diagnosis without a clinical status": _select(_record([
            {k: v for k, v in condition("G61.0", onset=days_ago(2)).items() if k != "clinicalStatus"}
            | {"category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                         "code": "encounter-diagnosis"}]}]}])),
        "GBS, pulmonary embolism ruled out": _select(_record([condition("G61.0", onset=days_ago(2)),
                                                               condition("I26.99", verification="differential")])),
        "GBS, CKD stage 4": _select(_record([condition("G61.0", onset=days_ago(3)), condition("N18.4")])),
        "CIDP, jugular vein thrombosis I82.C1": _select(_record([condition("G61.81"), condition("I82.C11", clinical="resolved")])),
        "CIDP, deep vein thrombosis history": _select(_record([condition("G61.81"), condition("I82.401", clinical="resolved")])),
        "GBS, no weight on record": _select(_record([condition("G61.0", onset=days_ago(2))], kg=None)),
        "GBS, weight 6 months old": _select(_record([condition("G61.0", onset=days_ago(2))], weighed=180)),
        "No diagnosis the guideline covers": _select(_record([condition("I10"), condition("E11.9")])),
        "Busy record: GBS among 40 diagnoses, 60 medications": _select(_record(
            [condition("G61.0", onset=days_ago(5))] + [condition(f"I10.{i}") for i in range(40)],
            labs=[_egfr(50 + i, low=60, when=i + 1) for i in range(60)],
            medications=[medication_request(f"C09AA0{i % 9}") for i in range(60)])),
    }

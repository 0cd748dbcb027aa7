#!/usr/bin/env python3
"""Build the FHIR R4 ValueSets in valuesets/ from the shared terminology table.

Usage:
    python tools/build_valuesets.py [path/to/codes.csv]

Default input: terminology/codes.csv, the project's own terminology table (each
code with its source); it began as ../shared/reference/terminology/codes.csv.
Output: valuesets/ValueSet-{id}.json, one file per value set in SPECS.

Safety rules applied here:
  * Only rows whose `confidence` is exactly "verified" and whose `code` is
    non-empty are used. No code is ever added that is not in codes.csv.
  * Displays are copied verbatim from codes.csv.
  * A value set that ends up with no verified code is not written.
  * Everything left out because it was not verified is printed as a gap report.

The JSON files are the committed source of truth; this script only makes the
mapping from codes.csv reviewable and reproducible. Re-run it after codes.csv
changes and review the diff.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fhir.resources.R4B.valueset import ValueSet

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT / "terminology/codes.csv"
ORDER_ROLE = "http://ivig-cds.org/fhir/StructureDefinition/ivig-order-role"
TEXT_PATTERN = "http://ivig-cds.org/fhir/StructureDefinition/text-pattern"
OUT_DIR = REPO_ROOT / "valuesets"

BASE_URL = "http://ivig-cds.org/fhir/ValueSet/"
VERSION = "0.1.0"
DATE = "2026-11-24"
TIMESTAMP = "2026-11-24T00:00:00Z"
PUBLISHER = "IVIG-CDS"

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
NDC = "http://hl7.org/fhir/sid/ndc"

# Order of code systems inside compose.include and expansion.contains.
SYSTEM_ORDER = [SNOMED, ICD10CM, ICD10, ICD10PCS, LOINC, RXNORM, ATC, NDC]
SYSTEM_LABEL = {
    SNOMED: "SNOMED CT",
    ICD10CM: "ICD-10-CM",
    ICD10: "ICD-10",
    ICD10PCS: "ICD-10-PCS",
    LOINC: "LOINC",
    RXNORM: "RxNorm",
    ATC: "ATC",
    NDC: "NDC",
}

# ICD-10 notes in codes.csv that mark a category whose descendants count too.
CATEGORY_NOTES = ("category/non-billable (use descendants)", "category with subcodes")

# Categories whose descendants must NOT be matched (listed as exact codes only).
NO_DESCENDANTS = {
    (ATC, "J06BA"),       # normal immunoglobulin: J06BA01 (subcutaneous) and J06BA02 (intravenous) are classified apart
    (ICD10CM, "G40.8"),   # "Other epilepsy": descendants include LGS and West syndrome
    (ICD10CM, "O99.35"),  # descendants include the puerperium; children listed explicitly
}

Row = dict[str, str]
RowFilter = Callable[[Row], bool]


# --- row filters used by SPECS ------------------------------------------------

def only_system(system: str) -> RowFilter:
    return lambda row: row["system_uri"] == system


def only_codes(*codes: str) -> RowFilter:
    return lambda row: row["code"] in codes


def only(*pairs: tuple[str, str]) -> RowFilter:
    return lambda row: (row["system_uri"], row["code"]) in pairs


def exclude(*pairs: tuple[str, str]) -> RowFilter:
    return lambda row: (row["system_uri"], row["code"]) not in pairs


@dataclass
class Spec:
    id: str
    title: str
    about: str  # markdown; source concept_keys and is-a codes are appended
    sources: dict[str, RowFilter | None]  # concept_key -> optional row filter
    extra: list[str] = field(default_factory=list)  # closing remarks
    role: str | None = None  # what an order coded or worded in this set means for IVIG recognition (ORDER_ROLE)
    words: str | None = None  # a case-insensitive regular expression: free text that names a member (TEXT_PATTERN)


RXNORM_INGREDIENT_NOTE = (
    "The RxNorm codes are ingredient (IN) codes; orders usually carry SCD/SBD "
    "product codes, which must be matched through the RxNorm ingredient "
    "relationship (has_ingredient) rather than by these codes directly."
)

NDC_NOTE = (
    "NDC caveat: the NDC codes here are labeler-product codes (e.g. "
    "44206-439), whereas FHIR NDC codings normally carry 10/11-digit package "
    "codes. The service matches package NDCs by their product part "
    "(labeler-product, normalising hyphens and zero-padding), so every package "
    "of a product is recognised. NDC displays are composed from the label's "
    "brand name, generic name, strength and labeler; they are not official titles."
)

SPECS: list[Spec] = [
    # --- Diagnoses -----------------------------------------------------------
    Spec("gbs", "Guillain-Barré syndrome",
         "Guillain-Barré syndrome (GBS), including its AIDP and AMSAN forms "
         "(SNOMED CT descendants listed explicitly).\n\n"
         "Caveat: ICD-10-CM G61.0 also includes Miller Fisher syndrome (a tabular "
         "inclusion term; MFS has no separate ICD-10-CM code) and \"Acute "
         "(post-)infective polyneuritis\", so a G61.0 coding may represent MFS.",
         {"gbs": None}),
    Spec("miller-fisher", "Miller Fisher syndrome",
         "Miller Fisher syndrome (MFS). Only the SNOMED CT concept is included: "
         "ICD-10-CM/ICD-10 G61.0 (Guillain-Barré syndrome) cannot distinguish MFS "
         "from GBS, so G61.0 is deliberately not part of this value set (it is in "
         "`gbs`).",
         {"miller_fisher": only_system(SNOMED)}),
    Spec("cidp", "Chronic inflammatory demyelinating polyradiculoneuropathy",
         "Chronic inflammatory demyelinating polyradiculoneuropathy (CIDP). The "
         "ICD-10-CM title of G61.81 says \"polyneuritis\"; it is the CIDP code.",
         {"cidp": None}),
    Spec("mmn", "Multifocal motor neuropathy",
         "Multifocal motor neuropathy (MMN). ICD-10-CM has a specific code "
         "(G61.82). The SNOMED CT preferred term of 230591002 is \"Motor "
         "neuropathy with multiple conduction block\" (synonym \"Multifocal motor "
         "neuropathy\").",
         {"mmn": None}),
    Spec("monoclonal-gammopathy", "Monoclonal gammopathy / paraproteinaemia",
         "Monoclonal gammopathy of undetermined significance (MGUS) and benign "
         "paraproteinaemia. Waldenström macroglobulinaemia (C88.0, SNOMED CT "
         "190818004) is left out on purpose: the guideline's paraproteinaemic "
         "neuropathy recommendations concern MGUS, which it defines as the "
         "non-malignant paraproteinaemias. Used together with a "
         "polyneuropathy code (value set `neuropathy`) to recognise "
         "paraproteinaemic demyelinating neuropathy.\n\n"
         "Caveats: ICD-10-CM D47.2 covers IgM, IgG and IgA MGUS alike - the "
         "isotype is not coded and must be read from laboratory data "
         "(immunofixation). ICD-10-CM has no code for demyelinating IgM/anti-MAG "
         "neuropathy; it is coded as D47.2 plus G63.",
         {"paraprotein_neuropathy": exclude((SNOMED, "386033004"), (ICD10CM, "G63"),
                                            (ICD10CM, "C88.0"), (SNOMED, "190818004")),
          "paraproteinaemia": only_codes("D47.2")}),
    Spec("neuropathy", "Polyneuropathy (for pairing with a monoclonal gammopathy)",
         "Polyneuropathy codes used to pair with a monoclonal gammopathy (value "
         "set `monoclonal-gammopathy`). Not specific on their own: SNOMED CT "
         "386033004 is the generic \"Neuropathy\" concept, and ICD-10-CM G63 "
         "(\"Polyneuropathy in diseases classified elsewhere\") requires the "
         "underlying disease to be coded first (its code-first note covers "
         "neoplasms C00-D49, which include D47.2). Use only in combination.",
         {"paraprotein_neuropathy": only((ICD10CM, "G63"), (SNOMED, "386033004"))}),
    Spec("lems", "Lambert-Eaton myasthenic syndrome",
         "Lambert-Eaton myasthenic syndrome (LEMS), with or without an underlying "
         "malignancy. ICD-10-CM G70.80/G70.81 are LEMS not associated with a "
         "neoplasm; G73.1 is LEMS in neoplastic disease (code first the "
         "neoplasm). SNOMED CT 292991000119106 is a US Edition extension concept.",
         {"lems": None, "lems_paraneoplastic": None}),
    Spec("lems-paraneoplastic", "Paraneoplastic Lambert-Eaton myasthenic syndrome",
         "Lambert-Eaton myasthenic syndrome with an underlying malignancy. "
         "ICD-10-CM G73.1: code first the underlying neoplasm (C00-D49); it "
         "Excludes1 G70.80-G70.81. WHO ICD-10 G73.1 is an asterisk code (dagger "
         "C00-D48).",
         {"lems_paraneoplastic": None}),
    Spec("neuromyotonia", "Neuromyotonia (Isaacs syndrome)",
         "Neuromyotonia (Isaacs syndrome).\n\n"
         "Caveat: ICD-10-CM G71.19 \"Other specified myotonic disorders\" has the "
         "inclusion term \"Neuromyotonia [Isaacs]\" but is shared with other "
         "myotonic disorders (e.g. myotonia fluctuans/permanens), so it is not "
         "specific for neuromyotonia.",
         {"neuromyotonia": None}),
    Spec("opsoclonus-myoclonus", "Opsoclonus-myoclonus syndrome",
         "Opsoclonus-myoclonus syndrome.",
         {"opsoclonus_myoclonus": None}),
    Spec("paraneoplastic-cerebellar-degeneration", "Paraneoplastic cerebellar degeneration",
         "Paraneoplastic cerebellar degeneration (PCD). In ICD-10-CM, PCD is coded "
         "as the underlying neoplasm plus G32.81 \"Cerebellar ataxia in diseases "
         "classified elsewhere\" (its code-first note names paraneoplastic "
         "cerebellar degeneration).\n\n"
         "Caveat: G32.81 is also used for cerebellar ataxia in non-neoplastic "
         "diseases; it indicates PCD only together with a neoplasm code (C00-D49).",
         {"paraneoplastic_cerebellar_degeneration": None}),
    Spec("limbic-encephalitis", "Limbic encephalitis",
         "Limbic encephalitis. ICD-10-CM G13.1 carries the inclusion term "
         "\"Paraneoplastic limbic encephalopathy\" (code first the underlying "
         "neoplasm).\n\n"
         "Caveat: G13.1 is broader than limbic encephalitis (\"Other systemic "
         "atrophy primarily affecting central nervous system in neoplastic "
         "disease\").",
         {"limbic_encephalitis_paraneoplastic": None,
          "limbic_encephalitis_autoimmune": None,
          "limbic_encephalitis": None}),
    Spec("paraneoplastic-sensory-neuronopathy", "Paraneoplastic sensory neuronopathy",
         "Paraneoplastic (subacute) sensory neuronopathy. ICD-10-CM G13.0 carries "
         "the inclusion term \"Sensorial paraneoplastic neuropathy [Denny "
         "Brown]\" (code first the underlying neoplasm).\n\n"
         "Caveat: G13.0 \"Paraneoplastic neuromyopathy and neuropathy\" is shared "
         "with carcinomatous neuromyopathy, so it is not specific for sensory "
         "neuronopathy.",
         {"paraneoplastic_sensory_neuronopathy": None}),
    Spec("dermatomyositis", "Dermatomyositis",
         "Dermatomyositis, adult and juvenile. ICD-10-CM M33.1 (other "
         "dermatomyositis, M33.10-M33.19) and M33.0 (juvenile dermatomyositis) "
         "are non-billable categories. ICD-10-CM M33.9 \"Dermatopolymyositis, "
         "unspecified\" is deliberately not included: it cannot tell "
         "dermatomyositis from polymyositis.",
         {"dermatomyositis": None, "dermatomyositis_juvenile": None}),
    Spec("polymyositis", "Polymyositis",
         "Polymyositis. ICD-10-CM M33.2 is a non-billable category "
         "(M33.20-M33.29). ICD-10-CM M33.9 \"Dermatopolymyositis, unspecified\" "
         "is deliberately not included: it cannot tell dermatomyositis from "
         "polymyositis.",
         {"polymyositis": None}),
    Spec("inclusion-body-myositis", "Inclusion body myositis",
         "Inclusion body myositis (IBM), including sporadic IBM. ICD-10-CM G72.41 "
         "has no sporadic/hereditary split.",
         {"inclusion_body_myositis": None, "inclusion_body_myositis_sporadic": None}),
    Spec("myasthenia-gravis", "Myasthenia gravis",
         "Myasthenia gravis of any kind: with or without exacerbation, myasthenic "
         "crisis, ocular myasthenia, and myasthenia gravis associated with "
         "thymoma. Transient neonatal myasthenia gravis (P94.0, which ICD-10-CM "
         "G70.0 Excludes1) is not included; see `myasthenia-gravis-neonatal`. "
         "SNOMED CT 77461000119109 and 77471000119103 are US Edition extension "
         "concepts.",
         {"myasthenia_gravis": None, "myasthenia_gravis_exacerbation": None,
          "myasthenic_crisis": None, "myasthenia_gravis_thymoma": None}),
    Spec("myasthenia-gravis-exacerbation", "Myasthenia gravis exacerbation or myasthenic crisis",
         "Exacerbation of myasthenia gravis, or myasthenic crisis. In ICD-10-CM a "
         "myasthenic crisis is usually coded as G70.01 \"Myasthenia gravis with "
         "(acute) exacerbation\" (codes.csv could not verify the index wording). "
         "WHO ICD-10 has no exacerbation axis. SNOMED CT 77461000119109 is a US "
         "Edition extension concept.",
         {"myasthenia_gravis_exacerbation": None, "myasthenic_crisis": None}),
    Spec("myasthenia-gravis-neonatal", "Transient neonatal myasthenia gravis",
         "Transient neonatal myasthenia gravis. ICD-10-CM G70.0 (myasthenia "
         "gravis) Excludes1 P94.0.",
         {"myasthenia_neonatal": None}),
    Spec("thymoma", "Thymoma",
         "Thymoma or other neoplasm of the thymus, and myasthenia gravis "
         "associated with thymoma.\n\n"
         "Caveat: the ICD-10/ICD-10-CM codes (D15.0, C37, D38.4) are "
         "neoplasm-of-thymus codes by behaviour (benign, malignant, uncertain); "
         "they are not specific for thymoma.",
         {"thymoma": None, "myasthenia_gravis_thymoma": None}),
    Spec("thymectomy", "Thymectomy",
         "Thymectomy procedures: SNOMED CT total thymectomy and ICD-10-PCS "
         "resection of thymus (open or percutaneous endoscopic approach).",
         {"thymectomy": None}),
    Spec("post-polio-syndrome", "Post-polio syndrome",
         "Post-polio syndrome. ICD-10-CM G14 Excludes1 B91 (sequelae of "
         "poliomyelitis); B91 is not post-polio syndrome and is not included.",
         {"post_polio_syndrome": None}),
    Spec("multiple-sclerosis", "Multiple sclerosis",
         "Multiple sclerosis of any course, and MS relapse.\n\n"
         "Caveat: in ICD-10-CM FY2026 (effective 2025-10-01) G35 became a "
         "non-billable category with course-specific codes (G35.A-G35.D); in "
         "FY2025 and earlier G35 was the single billable code. G35 is kept so that "
         "legacy data still match. WHO ICD-10 G35 has no subtype split.",
         {"multiple_sclerosis": None, "ms_relapsing_remitting": None,
          "ms_primary_progressive": None, "ms_secondary_progressive": None,
          "ms_relapse": None}),
    Spec("ms-relapsing-remitting", "Relapsing-remitting multiple sclerosis",
         "Relapsing-remitting multiple sclerosis. ICD-10-CM G35.A is new in "
         "FY2026; data coded before FY2026 (and WHO ICD-10 data) carry only G35, "
         "which does not give the disease course.",
         {"ms_relapsing_remitting": None}),
    Spec("ms-secondary-progressive", "Secondary progressive multiple sclerosis",
         "Secondary progressive multiple sclerosis. ICD-10-CM G35.C0-G35.C2 are "
         "new in FY2026; data coded before FY2026 (and WHO ICD-10 data) carry "
         "only G35, which does not give the disease course.",
         {"ms_secondary_progressive": None}),
    Spec("ms-primary-progressive", "Primary progressive multiple sclerosis",
         "Primary progressive multiple sclerosis. ICD-10-CM G35.B0-G35.B2 are new "
         "in FY2026; data coded before FY2026 (and WHO ICD-10 data) carry only "
         "G35, which does not give the disease course.",
         {"ms_primary_progressive": None}),
    Spec("ms-relapse", "Multiple sclerosis relapse",
         "Relapse (exacerbation) of multiple sclerosis, e.g. for the rules on "
         "relapses during pregnancy and post partum. This value set contains a "
         "SNOMED CT concept only.",
         {"ms_relapse": None}),
    Spec("clinically-isolated-syndrome", "Clinically isolated syndrome",
         "Clinically isolated syndrome (CIS).\n\n"
         "Caveat: ICD-10-CM G37.9 \"Demyelinating disease of central nervous "
         "system, unspecified\" carries the inclusion term \"Clinically isolated "
         "syndromes\" but is broad.",
         {"clinically_isolated_syndrome": None}),
    Spec("neuromyelitis-optica", "Neuromyelitis optica",
         "Neuromyelitis optica [Devic]. MOG antibody disease (ICD-10-CM G37.81) "
         "is a separate condition and is not included.",
         {"neuromyelitis_optica": None}),
    Spec("balo-concentric-sclerosis", "Baló concentric sclerosis",
         "Baló concentric sclerosis of the central nervous system.",
         {"balo_concentric_sclerosis": None}),
    Spec("adem", "Acute disseminated encephalomyelitis",
         "Acute disseminated encephalomyelitis (ADEM). ICD-10-CM G04.0 is a "
         "non-billable category (G04.00-G04.02).\n\n"
         "Caveat: ICD-10-CM G04.81 \"Other encephalitis and encephalomyelitis\" "
         "is included because it carries the inclusion term \"Noninfectious acute "
         "disseminated encephalomyelitis (noninfectious ADEM)\", but it is shared "
         "with other encephalitis and is not specific for ADEM.",
         {"adem": None}),
    Spec("stiff-person-syndrome", "Stiff-person syndrome",
         "Stiff-person syndrome (ICD-10-CM title \"Stiff-man syndrome\").",
         {"stiff_person_syndrome": None}),
    Spec("rasmussen-encephalitis", "Rasmussen encephalitis",
         "Rasmussen encephalitis (Rasmussen syndrome). This value set contains a "
         "SNOMED CT concept only.",
         {"rasmussen_encephalitis": None}),
    Spec("west-syndrome", "West syndrome",
         "West syndrome (infantile/epileptic spasms). ICD-10-CM G40.82 "
         "\"Epileptic spasms\" (inclusion terms \"Infantile spasms\", \"Salaam "
         "attacks\", \"West's syndrome\") is a non-billable category; its children "
         "by intractability and status epilepticus are also listed.",
         {"west_syndrome": None}),
    Spec("lennox-gastaut-syndrome", "Lennox-Gastaut syndrome",
         "Lennox-Gastaut syndrome. ICD-10-CM G40.81 is a non-billable category; "
         "its children by intractability and status epilepticus are also listed.",
         {"lennox_gastaut": None}),
    Spec("landau-kleffner-syndrome", "Landau-Kleffner syndrome",
         "Landau-Kleffner syndrome (acquired epileptic aphasia). WHO ICD-10 F80.3 "
         "names it explicitly. In ICD-10-CM, \"Landau-Kleffner syndrome\" is an "
         "inclusion term of the category G40.8 \"Other epilepsy and recurrent "
         "seizures\".\n\n"
         "G40.8 is included as an exact code only: it deliberately has NO is-a "
         "filter, because it is far too broad - its descendants include "
         "Lennox-Gastaut syndrome (G40.81-) and epileptic spasms / West syndrome "
         "(G40.82-). G40.8 is non-billable, so it will rarely appear on its own "
         "in ICD-10-CM data.",
         {"landau_kleffner": None}),
    Spec("pregnancy", "Pregnancy",
         "Pregnancy. Includes ICD-10-CM O99.35 \"Diseases of the nervous system "
         "complicating pregnancy, childbirth, and the puerperium\" (used with the "
         "G code, e.g. MS, in pregnant patients).\n\n"
         "O99.35 deliberately has NO is-a filter, because its descendants also "
         "cover the puerperium (O99.355 is in `postpartum`); its pregnancy "
         "children O99.350-O99.353 are listed explicitly instead.\n\n"
         "Not exhaustive: any ICD-10-CM O00-O9A code, and Z3A.- (weeks of "
         "gestation), also implies pregnancy or the puerperium; those ranges are "
         "not part of this value set.",
         {"pregnancy": None}),
    Spec("postpartum", "Postpartum state",
         "Postpartum state (puerperium).\n\n"
         "Caveat: ICD-10-CM O90.89 \"Other complications of the puerperium, not "
         "elsewhere classified\" is a weak signal.",
         {"postpartum": None}),

    # --- Medications and procedures -----------------------------------------
    Spec("ivig", "Intravenous immunoglobulin (IVIG)",
         "Normal human immunoglobulin licensed for intravenous use only: ATC J06BA02 "
         "(immunoglobulins, normal human, for intravascular administration) and the US "
         "NDC products of IVIG brands licensed for intravenous use alone. An order for "
         "one of these is IVIG unless its route says otherwise.\n\n"
         "The ATC parent J06BA is deliberately NOT included: it also covers J06BA01 "
         "(extravascular/subcutaneous immunoglobulin); it is in "
         "`immunoglobulin-by-route`.\n\n"
         + NDC_NOTE,
         {"ivig": exclude((ATC, "J06BA"))},
         role="ivig",
         words=r"\bivig\b|\bigiv\b|intravenous immun[eo]\s*-?\s*globulin|immun[eo]\s*-?\s*globulin intravenous"
               r"|privigen|octagam|panzyga|flebogamma|gammaplex|bivigam|asceniv|alyglo|yimmugo|qivigy|carimune"
               r"|gammagard s/?d"),
    Spec("immunoglobulin-by-route", "Normal human immunoglobulin whose route decides",
         "Normal human immunoglobulin that may be given intravenously or "
         "subcutaneously: products licensed for both routes (Gammagard Liquid and "
         "Gammagard Liquid ERC, Gamunex-C and its predecessor Gamunex, Gammaked), the "
         "ATC group J06BA itself (exact code only: its children are classified "
         "separately), and the route-agnostic SNOMED CT concepts for normal human "
         "immunoglobulin. An order for one of these is IVIG only when its route "
         "(coded, or in its text) is intravenous; with no route, the service says that "
         "the route decides and offers no dose.\n\n"
         + NDC_NOTE,
         {"ivig_dual_route": None, "ivig": only((ATC, "J06BA")), "immunoglobulin_normal": None},
         role="ivig-by-route",
         words=r"immun[eo]\s*-?\s*globulin|immunoglobulin|gamma\s*-?\s*globulin|gammagard|gamunex|gammaked"),
    Spec("subcutaneous-immunoglobulin", "Subcutaneous (extravascular) immunoglobulin",
         "Normal human immunoglobulin for extravascular (subcutaneous, facilitated "
         "subcutaneous or intramuscular) administration: ATC J06BA01 and the NDC "
         "products of subcutaneous brands. Never IVIG, whatever route an order "
         "gives: its dosing is different and the guideline does not cover it.\n\n"
         + NDC_NOTE,
         {"ivig_subcutaneous_exclude": None, "scig": None},
         role="never-ivig",
         words=r"\bf?scig\b|hizentra|cuvitru|xembify|cutaquig|hyqvia|immun[eo]\s*-?\s*globulin subcutaneous"
               r"|subcutaneous immun[eo]\s*-?\s*globulin|facilitated subcutaneous"),
    Spec("hyperimmune-immunoglobulin", "Hyperimmune (specific) immunoglobulins",
         "Specific immunoglobulins raised against one antigen (ATC J06BB and its "
         "children: anti-D, tetanus, varicella/zoster, hepatitis B, rabies, "
         "cytomegalovirus ...), in ATC, SNOMED CT, RxNorm and NDC. Never IVIG, even "
         "when given intravenously (WinRho, Rhophylac, Cytogam): the guideline covers "
         "normal human immunoglobulin only.\n\n"
         + NDC_NOTE,
         {"hyperimmune": None},
         role="never-ivig",
         words=r"hyperimmune|anti\s*-?\s*d\b|rho\s*\(?\s*d\s*\)?|rhogam|winrho|rhophylac|hyperrho"
               r"|cytomegalovirus|\bcmv\b|cytogam|hepatitis\s*b|\bhbig\b|hepagam|nabi\s*-?\s*hb|hyperhep"
               r"|rabies|hyperrab|kedrab|imogam|tetanus|hypertet|varicella|zoster|varizig|botulism|babybig"
               r"|\bbig\s*-?\s*iv\b|vaccinia|anthrax"),
    Spec("route-intravenous", "Intravenous route",
         "Intravenous routes of administration in SNOMED CT, HL7 v3 "
         "RouteOfAdministration and EDQM Standard Terms. The v3 code IV (intravenous "
         "infusion) sits under _Infusion, not _IntravenousRoute, so every code is "
         "listed rather than matched by hierarchy. Intravascular codes (SNOMED CT "
         "445755006, v3 IVASCINFUS/IVASCINJ) are left out: they include intra-arterial "
         "use.",
         {"route_intravenous": None},
         role="intravenous-route",
         words=r"intravenous|\bi\.?v\.?\b|\bivig\b|\bigiv\b"),
    Spec("route-extravascular", "Subcutaneous or intramuscular route",
         "Subcutaneous and intramuscular routes of administration in SNOMED CT, HL7 v3 "
         "RouteOfAdministration and EDQM Standard Terms. An immunoglobulin order by one "
         "of these routes is not IVIG.",
         {"route_subcutaneous": None, "route_intramuscular": None},
         role="extravascular-route",
         words=r"subcutaneous|\bsubcut\b|\bs\.?c\.?\b|\bsubq\b|\bsq\b|\bf?scig\b|intramuscular|\bi\.?m\.?\b"),
    Spec("corticosteroids", "Systemic corticosteroids",
         "Systemic glucocorticoids: ATC H02AB (glucocorticoids) and the named "
         "agents methylprednisolone, prednisolone and prednisone.\n\n"
         + RXNORM_INGREDIENT_NOTE,
         {"glucocorticoid_systemic": None, "methylprednisolone": None,
          "prednisolone": None, "prednisone": None}),
    Spec("methylprednisolone", "Methylprednisolone",
         "Methylprednisolone.\n\n" + RXNORM_INGREDIENT_NOTE,
         {"methylprednisolone": None}),
    Spec("prednisone", "Prednisone or prednisolone",
         "Prednisone or prednisolone. The guideline's dermatomyositis (DM) "
         "recommendation names prednisone; prednisolone is its active metabolite "
         "and is included here as the same therapy.\n\n" + RXNORM_INGREDIENT_NOTE,
         {"prednisone": None, "prednisolone": None}),
    Spec("plasma-exchange", "Plasma exchange",
         "Plasma exchange (plasmapheresis).",
         {"plasma_exchange": None}),

    # --- Observations ---------------------------------------------------------
    Spec("body-weight", "Body weight",
         "Body weight observations. 29463-7 is the code of the FHIR vital-signs "
         "and US Core profiles; 3141-9 \"Body weight Measured\" is accepted too.",
         {"body_weight": None}),
    Spec("egfr", "Estimated glomerular filtration rate",
         "Estimated GFR (per 1.73 m2): creatinine-based (CKD-EPI 2021, CKD-EPI "
         "2009, MDRD), creatinine and cystatin C-based, cystatin C-based, "
         "unspecified method, and the legacy race- and sex-stratified codes still "
         "seen in historical data.\n\n"
         "Caveat: 62238-1 is CKD-EPI 2009, NOT 2021 (several public repositories "
         "mislabel it); the race-free CKD-EPI 2021 equation is 98979-8.",
         {"egfr": None}),
    Spec("creatinine", "Serum creatinine",
         "Creatinine in serum or plasma (mass and molar concentration) and in "
         "blood. Check the unit before comparing values: 14682-9 is the SI "
         "(umol/L) variant.",
         {"creatinine_serum": None}),
    Spec("full-blood-count", "Full blood count",
         "Full blood count components: haemoglobin and platelet count.\n\n"
         "No verified leukocyte-count (white blood cell count) code was "
         "available in codes.csv, so leukocyte counts are not covered by this "
         "value set.",
         {"hemoglobin": None, "platelets": None}),
    Spec("liver-enzymes", "Liver enzymes",
         "Liver enzymes: aspartate aminotransferase (AST) and alanine "
         "aminotransferase (ALT).",
         {"ast": None, "alt": None}),
    Spec("monitoring-labs", "Laboratory results to monitor during IVIG",
         "The laboratory results the guideline calls mandatory to monitor during IVIG "
         "(full blood count, liver enzymes, renal function): the union of the "
         "`egfr`, `creatinine`, `full-blood-count` and `liver-enzymes` value sets, "
         "kept as one set so that a single query fetches them.",
         {"egfr": None, "creatinine_serum": None, "hemoglobin": None, "platelets": None, "ast": None, "alt": None}),

    # --- Conditions for safety checks -----------------------------------------
    Spec("kidney-disease", "Kidney disease",
         "Kidney disease for the IVIG renal safety checks: chronic kidney disease "
         "(any stage, including end-stage renal disease), acute kidney failure, "
         "unspecified kidney failure, renal impairment and dependence on renal "
         "dialysis.",
         {"chronic_kidney_disease": None, "acute_kidney_failure": None,
          "renal_failure_unspecified": None, "dialysis_dependence": None,
          "renal_failure": None, "renal_impairment": None},
         ["SNOMED CT 14669001 is shown with its 2022 International preferred term "
          "\"Acute renal failure syndrome\"; later releases may display \"Acute "
          "kidney injury\"."]),
    Spec("thrombosis", "Thrombosis and thromboembolism",
         "Thrombotic and thromboembolic disease for the IVIG thrombosis safety "
         "checks: venous thrombosis (including deep vein thrombosis), pulmonary "
         "embolism, arterial embolism and thrombosis, cerebral infarction, acute "
         "myocardial infarction, and a personal history of these (including old "
         "myocardial infarction and TIA/cerebral infarction without residual "
         "deficits).\n\n"
         "Caveat: in ICD-10-CM, venous thrombosis is covered by I82.4 (acute DVT "
         "of the lower extremity, with descendants) and I82.90/I82.91 "
         "(unspecified vein) only.",
         {"venous_thrombosis": None, "pulmonary_embolism": None,
          "arterial_thrombosis": None, "thrombosis_history": None,
          "thrombosis": None}),
]


# --- building -----------------------------------------------------------------

def is_verified(row: Row) -> bool:
    return row["confidence"] == "verified" and row["code"] != ""


def wants_descendants(row: Row) -> bool:
    """True if descendants of this code should be matched with an is-a filter."""
    system, code = row["system_uri"], row["code"]
    if (system, code) in NO_DESCENDANTS:
        return False
    if system in (ICD10, ICD10CM):
        return any(marker in row["note"] for marker in CATEGORY_NOTES)
    if system == ATC:
        return len(code) < 7
    return False


def pascal_case(value_set_id: str) -> str:
    return "".join(part.capitalize() for part in value_set_id.split("-"))


def select_rows(spec: Spec, rows: list[Row]) -> list[Row]:
    """Verified rows for a spec, in codes.csv order, deduplicated by system+code."""
    selected: dict[tuple[str, str], Row] = {}
    for row in rows:
        if row["concept_key"] not in spec.sources or not is_verified(row):
            continue
        keep = spec.sources[row["concept_key"]]
        if keep is not None and not keep(row):
            continue
        key = (row["system_uri"], row["code"])
        if key in selected and selected[key]["display"] != row["display"]:
            sys.exit(f"{spec.id}: {key} has two different displays in codes.csv")
        selected.setdefault(key, row)
    return list(selected.values())


def system_rank(system: str) -> tuple[int, str]:
    if system in SYSTEM_ORDER:
        return SYSTEM_ORDER.index(system), system
    return len(SYSTEM_ORDER), system


def describe(spec: Spec, descendant_rows: list[Row]) -> str:
    keys = ", ".join(f"`{key}`" for key in spec.sources)
    parts = [spec.about, *spec.extra]
    if descendant_rows:
        by_system: dict[str, list[str]] = {}
        for r in descendant_rows:
            label = SYSTEM_LABEL.get(r["system_uri"], r["system_uri"])
            by_system.setdefault(label, []).append(r["code"])
        codes = "; ".join(f"{label} {', '.join(c)}" for label, c in by_system.items())
        parts.append(
            f"Descendants of {codes} are included through is-a filters; the "
            "service matches them by code prefix, since the ICD-10 and ATC "
            "hierarchies follow the code."
        )
    parts.append(f"Source: codes.csv concept_keys {keys} (verified rows only).")
    return "\n\n".join(parts)


def build_value_set(spec: Spec, selected: list[Row]) -> dict:
    url = BASE_URL + spec.id
    by_system: dict[str, list[Row]] = {}
    for row in selected:
        by_system.setdefault(row["system_uri"], []).append(row)

    include, contains, descendant_rows = [], [], []
    for system in sorted(by_system, key=system_rank):
        system_rows = by_system[system]
        include.append({
            "system": system,
            "concept": [{"code": r["code"], "display": r["display"]} for r in system_rows],
        })
        for row in system_rows:
            if wants_descendants(row):
                descendant_rows.append(row)
                include.append({
                    "system": system,
                    "filter": [{"property": "concept", "op": "is-a", "value": row["code"]}],
                })
        contains += [{"system": system, "code": r["code"], "display": r["display"]}
                     for r in system_rows]

    extensions = ([{"url": ORDER_ROLE, "valueCode": spec.role}] if spec.role else []) + (
        [{"url": TEXT_PATTERN, "valueString": spec.words}] if spec.words else [])
    return {
        "resourceType": "ValueSet",
        "id": spec.id,
        **({"extension": extensions} if extensions else {}),
        "url": url,
        "version": VERSION,
        "name": pascal_case(spec.id),
        "title": spec.title,
        "status": "active",
        "experimental": False,
        "date": DATE,
        "publisher": PUBLISHER,
        "description": describe(spec, descendant_rows),
        "compose": {"include": include},
        "expansion": {
            "identifier": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}",
            "timestamp": TIMESTAMP,
            "total": len(contains),
            "contains": contains,
        },
    }


def read_rows(csv_path: Path) -> list[Row]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("codes_csv", nargs="?", type=Path, default=DEFAULT_CSV,
                        help="path to codes.csv (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder to write to (default: %(default)s)")
    args = parser.parse_args()
    csv_path, out_dir = args.codes_csv.resolve(), args.out
    rows = read_rows(csv_path)
    known_keys = {row["concept_key"] for row in rows}
    print(f"Read {len(rows)} rows from {csv_path}")

    out_dir.mkdir(exist_ok=True)
    written, empty = [], []
    missing_keys: dict[str, list[str]] = {}
    for spec in SPECS:
        for key in spec.sources:
            if key not in known_keys:
                missing_keys.setdefault(key, []).append(spec.id)
        out_path = out_dir / f"ValueSet-{spec.id}.json"
        selected = select_rows(spec, rows)
        if not selected:
            empty.append(spec)
            if out_path.exists():  # stale output from an earlier codes.csv
                out_path.unlink()
            continue
        resource = build_value_set(spec, selected)
        ValueSet.model_validate(resource)  # raises if not valid FHIR
        out_path.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        written.append((out_path, len(selected)))

    print(f"\nWrote {len(written)} ValueSet files to {out_dir}:")
    for path, count in written:
        print(f"  {path.name} (codes: {count})")

    print("\nValue sets NOT written (no verified code):")
    for spec in empty:
        print(f"  {spec.id} (concept_keys: {', '.join(spec.sources)})")
    if not empty:
        print("  none")

    print("\nConcept_keys not found in codes.csv:")
    for key, ids in missing_keys.items():
        print(f"  {key} (asked for by: {', '.join(ids)})")
    if not missing_keys:
        print("  none")

    print("\nGap report: rows left out because not verified "
          "(confidence is not 'verified', or the code is empty):")
    users: dict[str, list[str]] = {}
    for spec in SPECS:
        for key in spec.sources:
            users.setdefault(key, []).append(spec.id)
    gaps = 0
    for key, ids in users.items():
        left_out = [r for r in rows if r["concept_key"] == key and not is_verified(r)]
        if not left_out:
            continue
        print(f"  {key} (value sets: {', '.join(ids)})")
        for r in left_out:
            print(f"    {r['confidence']:<10} {r['system_uri']}  "
                  f"{r['code'] or '(no code)'}  {r['display']}")
            gaps += 1
    print(f"  {gaps} rows left out." if gaps else "  none")
    return 0


if __name__ == "__main__":
    sys.exit(main())

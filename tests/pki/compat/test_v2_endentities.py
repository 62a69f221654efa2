"""EJBCA's v2 end entity resource: status, authorized profiles, a profile's content, the sorted search."""

from __future__ import annotations

import pytest

from tests.endentities.entities_support import *  # noqa: F403  (ee_profile_factory, entity_factory)
from tests.pki.test_api_auth import (
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

V2 = "/ejbca/ejbca-rest-api/v2"
SEARCH = f"{V2}/endentity/search"
EE_FIELDS = {"username", "dn", "subject_alt_name", "email", "status", "token", "extension_data"}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def world(db, root_ca, ee_profile_factory, entity_factory):
    alpha = ee_profile_factory("Alpha", ca=root_ca, description="for servers")
    beta = ee_profile_factory("Beta", ca=root_ca)
    for name in ("carol", "alice", "bob"):
        entity_factory(name, profile=alpha)
    entity_factory("mallory", profile=beta)
    return {"alpha": alpha, "beta": beta}


def usernames(client, criteria, status=200, **body) -> list[str]:
    r = client.post(SEARCH, {"max_number_of_results": 10, "criteria": [
        {"property": p, "value": v, "operation": o} for p, v, o in criteria], **body}, format="json")
    assert r.status_code == status, r.content
    return [e["username"] for e in r.json()["end_entities"]] if status == 200 else r.json()


def test_status(api):
    r = api.get(f"{V2}/endentity/status")
    assert r.status_code == 200 and r.json()["version"] == "2.0"


def test_authorized_profiles(db, world):
    alpha = world["alpha"]
    creator = make_client("c", [f"/endentityprofilesrules/{alpha.pk}/create_end_entity"])
    body = creator.get(f"{V2}/endentity/profiles/authorized").json()
    assert body == {"end_entitie_profiles": [{"name": "Alpha", "id": alpha.pk, "description": "for servers"}]}
    everything = superadmin_client().get(f"{V2}/endentity/profiles/authorized").json()["end_entitie_profiles"]
    assert {"Alpha", "Beta"} <= {p["name"] for p in everything}


def test_profile_content(api, world):
    r = api.get(f"{V2}/endentity/profile/Alpha")
    assert r.status_code == 200
    assert r.json() == {"end_entity_profile_name": "Alpha", "subject_distinguished_name_fields": ["CN", "O", "C"],
                        "subject_alternative_name_fields": ["DNSNAME", "RFC822NAME"],
                        "available_certificate_profiles": ["ENDUSER"], "available_cas": ["TestRoot"]}


def test_a_profile_the_caller_may_not_use_is_as_missing(db, world):
    client = make_client("c", [f"/endentityprofilesrules/{world['alpha'].pk}/view_end_entity"])
    assert client.get(f"{V2}/endentity/profile/Alpha").status_code == 200
    hidden, missing = (client.get(f"{V2}/endentity/profile/{n}") for n in ("Beta", "Gamma"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error_message"].replace("Beta", "X") == missing.json()["error_message"].replace("Gamma", "X")


def test_sorted_pages(api, world):
    crit = [("END_ENTITY_PROFILE", "Alpha", "EQUAL")]
    asc = {"property": "USERNAME", "operation": "ASC"}
    assert usernames(api, crit, sort_operation=asc) == ["alice", "bob", "carol"]
    assert usernames(api, crit, sort_operation={"property": "USERNAME", "operation": "DESC"}) == [
        "carol", "bob", "alice"]
    r = api.post(SEARCH, {"max_number_of_results": 2, "current_page": 2, "sort_operation": asc,
                          "criteria": [{"property": "END_ENTITY_PROFILE", "value": "Alpha", "operation": "EQUAL"}]},
                 format="json")
    assert [e["username"] for e in r.json()["end_entities"]] == ["carol"] and r.json()["more_results"] is False
    first = api.post(SEARCH, {"max_number_of_results": 2, "current_page": 1, "sort_operation": asc,
                              "criteria": [{"property": "QUERY", "value": "o", "operation": "LIKE"}]}, format="json")
    assert set(first.json()) == {"end_entities", "more_results"}
    assert set(first.json()["end_entities"][0]) == EE_FIELDS


@pytest.mark.parametrize(("body", "needle"), [
    ({"max_number_of_results": 501}, "max_number_of_results"),
    ({"max_number_of_results": 0}, "max_number_of_results"),
    ({"sort_operation": {"property": "PASSWORD", "operation": "ASC"}}, "property"),
    ({"max_number_of_results": 500, "current_page": 1000}, "deep"),
    ({"criteria": []}, "criteria"),
])
def test_bad_searches_are_400(api, world, tracebacks, body, needle):
    full = {"max_number_of_results": 10, "criteria": [{"property": "QUERY", "value": "a", "operation": "LIKE"}],
            **body}
    r = api.post(SEARCH, full, format="json")
    assert r.status_code == 400 and needle in r.json()["error_message"] and not tracebacks.records


def test_search_finds_only_what_the_role_may_view(db, world, root_ca):
    """The attack: a role that may view Alpha's end entities searches for everything and for Beta's."""
    eve = make_client("eve", ["/ra_functionality/view_end_entity", f"/ca/{root_ca.pk}",
                              f"/endentityprofilesrules/{world['alpha'].pk}/view_end_entity"])
    assert sorted(usernames(eve, [("QUERY", "", "LIKE")])) == ["alice", "bob", "carol"]
    assert usernames(eve, [("QUERY", "mallory", "EQUAL")]) == []
    assert usernames(eve, [("END_ENTITY_PROFILE", "Beta", "EQUAL")], status=400)["error_code"] == 400
    no_ca = make_client("noca", ["/ra_functionality/view_end_entity",
                                 f"/endentityprofilesrules/{world['alpha'].pk}/view_end_entity"])
    assert usernames(no_ca, [("QUERY", "", "LIKE")]) == []
    assert make_client("nobody", []).post(SEARCH, {}, format="json").status_code == 403

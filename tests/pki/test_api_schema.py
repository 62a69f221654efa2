"""The OpenAPI schema (valid, with EJBCA's paths and exactly EJBCA's response fields) and the local Swagger UI."""

import re

import pytest
from django.contrib.staticfiles import finders
from openapi_spec_validator import validate

from tests.pki.test_api_auth import (
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    superadmin_client,
)

P = "/ejbca/ejbca-rest-api/v1"
PATHS = {
    f"{P}/ca": "get",
    f"{P}/ca/status": "get",
    f"{P}/ca/{{subject_dn}}/certificate/download": "get",
    f"{P}/ca/{{issuer_dn}}/getLatestCrl": "get",
    f"{P}/ca/{{issuer_dn}}/createcrl": "post",
    f"{P}/certificate/status": "get",
    f"{P}/certificate/search": "post",
    f"{P}/certificate/{{issuer_dn}}/{{certificate_serial_number}}/revocationstatus": "get",
    f"{P}/certificate/{{issuer_dn}}/{{certificate_serial_number}}/revoke": "put",
    "/api/v1/certificates/{fingerprint}/": "get",
    "/api/v1/cas/{ca}/certificates/{serial}/": "get",
}
# Component -> EJBCA's properties (from EJBCA's OpenAPI document)
EJBCA_SHAPES = {
    "CaInfo": {"id", "name", "subject_dn", "issuer_dn", "expiration_date", "external"},
    "Crl": {"crl", "response_format"},
    "CreateCrl": {"issuer_dn", "latest_crl_version", "latest_delta_crl_version", "latest_partition_crl_versions",
                  "latest_partition_delta_crl_versions", "all_success"},
    "RevokeStatus": {"issuer_dn", "serial_number", "revocation_reason", "revocation_date", "invalidity_date",
                     "message", "revoked"},
    "CertificateResult": {"certificate", "serial_number", "response_format", "certificate_profile",
                          "end_entity_profile"},
    "SearchResponse": {"certificates", "more_results"},
    "SearchRequest": {"max_number_of_results", "criteria"},
    "SearchCriterion": {"property", "value", "operation"},
    "Status": {"status", "version", "revision"},
    "Error": {"error_code", "error_message"},
}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def schema(api):
    r = api.get("/api/schema/?format=json")
    assert r.status_code == 200
    return r.json()


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


@pytest.mark.parametrize(("path", "method"), PATHS.items())
def test_schema_lists_each_endpoint_with_responses(schema, path, method):
    operation = schema["paths"][path][method]
    assert "200" in operation["responses"]
    errors = [code for code in operation["responses"] if code.startswith("4")]
    assert "401" in errors
    for code in errors:
        ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/Error")


@pytest.mark.parametrize(("component", "fields"), EJBCA_SHAPES.items())
def test_schema_shapes_carry_ejbcas_field_names(schema, component, fields):
    assert set(schema["components"]["schemas"][component]["properties"]) == fields


def test_schema_request_body_and_query_parameters(schema):
    search = schema["paths"][f"{P}/certificate/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchRequest")
    revoke = schema["paths"][f"{P}/certificate/{{issuer_dn}}/{{certificate_serial_number}}/revoke"]["put"]
    assert {p["name"] for p in revoke["parameters"]} >= {"issuer_dn", "certificate_serial_number", "reason", "date"}
    latest = schema["paths"][f"{P}/ca/{{issuer_dn}}/getLatestCrl"]["get"]
    assert {p["name"] for p in latest["parameters"]} >= {"deltaCrl", "crlPartitionIndex"}


def test_docs_page_uses_only_local_assets(api):
    r = api.get("/api/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    # The start-up script is a file of its own (no inline script under the CSP); it names the schema
    start = api.get("/api/docs/?script=").content.decode()
    assert "swagger-ui" in html and "/api/schema/" in start
    for external in ("https://", "http://", "//cdn", "cdn.", "unpkg", "jsdelivr", "cdnjs"):
        assert external not in start, external
    for external in ("https://", "http://", "//cdn", "cdn.", "unpkg", "jsdelivr", "cdnjs"):
        assert external not in html, external
    assets = re.findall(r'(?:src|href)="/static/([^"?]+)', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert finders.find(asset), f"{asset} is not a local static file"


def test_schema_and_docs_are_readable_without_login(client, db):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200

"""References that look like ids: only real primary keys are read as one; the rest are names."""

import pytest

from pki.choices import RevocationReason
from pki.errors import NotFoundError
from pki.ids import is_db_id
from pki.services.cas import get_ca
from pki.services.profiles import get_profile
from tests.endentities.entities_support import *  # noqa: F403  (ee_profile, entity_factory)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (1, True),
        ("42", True),
        ("9223372036854775807", True),
        ("9223372036854775808", False),  # past the BigAutoField range
        ("1" * 40, False),
        ("١٢", False),  # Arabic-Indic digits pass str.isdigit
        ("²", False),
        ("", False),
        ("ManagementCA", False),
        (-1, False),
    ],
)
def test_is_db_id(ref, expected):
    assert is_db_id(ref) is expected


@pytest.mark.django_db
@pytest.mark.parametrize("ref", ["99999999999999999999999", "١٢", "²"])
def test_lookups_with_impossible_ids_are_not_found(ref):
    with pytest.raises(NotFoundError):
        get_ca(ref)
    with pytest.raises(NotFoundError):
        get_profile(ref)


@pytest.mark.django_db
def test_builtin_profiles_store_eku_as_oids(django_db_setup):
    from pki.services.profiles import ensure_builtin_profiles

    ensure_builtin_profiles()
    assert get_profile("SERVER").extended_key_usage == ["1.3.6.1.5.5.7.3.1"]
    assert get_profile("ENDUSER").extended_key_usage == ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4"]


# --- Unicode digits and overflowing numbers at every interface that takes an id or a name (issue 12 item 13) ---

BAD_IDS = ["¹", "١٩", "²³", "٠", "99999999999999999999", "9223372036854775808", "１２"]


@pytest.fixture
def rest(db):
    from tests.pki.test_api_auth import superadmin_client

    return superadmin_client()


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _endentity_body(**change) -> dict:
    body = {"username": "uni", "password": "foo123", "subject_dn": "CN=uni,O=Test,C=SE",
            "ca_name": "TestRoot", "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "token": "USERGENERATED"}
    return {**body, **change}


V1 = "/ejbca/ejbca-rest-api/v1"
REQUESTS = {
    "oauth provider get": lambda c, v: c.get(f"/api/v1/oauth-providers/{v}/"),
    "oauth provider put": lambda c, v: c.put(f"/api/v1/oauth-providers/{v}/", {"label": "x"}, format="json"),
    "oauth provider delete": lambda c, v: c.delete(f"/api/v1/oauth-providers/{v}/"),
    "endentity ca_name": lambda c, v: c.post(f"{V1}/endentity", _endentity_body(ca_name=v), format="json"),
    "endentity certificate_profile_name": lambda c, v: c.post(
        f"{V1}/endentity", _endentity_body(certificate_profile_name=v), format="json"),
    "endentity end_entity_profile_name": lambda c, v: c.post(
        f"{V1}/endentity", _endentity_body(end_entity_profile_name=v), format="json"),
    "endentity status": lambda c, v: c.post(f"{V1}/endentity", _endentity_body(status=v), format="json"),
    "endentity token": lambda c, v: c.post(f"{V1}/endentity", _endentity_body(token=v), format="json"),
    "endentity setstatus": lambda c, v: c.post(f"{V1}/endentity/uni0/setstatus", {"status": v}, format="json"),
    "ca latest crl": lambda c, v: c.get(f"{V1}/ca/{v}/getLatestCrl"),
    "ca certificates by serial": lambda c, v: c.get(f"/api/v1/cas/{v}/certificates/1/"),
    "certificate revoke reason": lambda c, v: c.put(
        f"{V1}/certificate/TestRoot/1/revoke?reason={v}"),
}


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_unicode_digits_and_overflow_are_refused_not_500(rest, ee_profile, entity_factory, request_name, value):
    entity_factory("uni0")
    response = REQUESTS[request_name](rest, value)
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert b"Traceback" not in response.content


@pytest.mark.parametrize("value", [*BAD_IDS, "1" * 5000])
def test_search_text_that_looks_numeric_is_a_search_not_a_500(rest, root_ca, value):
    """A free-text query is also read as a decimal serial when it is one; anything else is just text."""
    response = rest.post(f"{V1}/certificate/search", {
        "max_number_of_results": 10, "criteria": [{"property": "QUERY", "value": value, "operation": "EQUAL"}]},
        format="json")
    assert response.status_code in (200, 400) and response.json().get("certificates", []) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12), (" 7 ", 7), (5, 5), ("-1", None), ("¹", None), ("١٩", None), ("１２", None), ("1e3", None),
     ("", None), ("+3", None), (True, None), (None, None), ("1" * 49, int("1" * 49)), ("1" * 101, None)],
)
def test_parse_decimal(value, expected):
    from pki.ids import parse_decimal

    assert parse_decimal(value) == expected


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("1", RevocationReason.KEY_COMPROMISE), ("keyCompromise", RevocationReason.KEY_COMPROMISE)],
)
def test_revocation_reason_codes_are_ascii(value, parsed):
    assert RevocationReason.parse(value) == parsed
    for unicode_digits in ("١", "¹", "١٠"):
        with pytest.raises(ValueError):
            RevocationReason.parse(unicode_digits)


@pytest.mark.parametrize("parse", ["EndEntityStatus", "TokenType"])
def test_end_entity_codes_are_ascii(parse):
    import endentities.choices as choices

    enum = getattr(choices, parse)
    code = str(int(next(iter(enum))))
    assert enum.parse(code) == next(iter(enum))
    with pytest.raises(ValueError):
        enum.parse(code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))


def test_validity_in_days_is_ascii():
    from datetime import UTC, datetime

    from pki.x509.validity import ValidityError, parse_validity

    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert (parse_validity("30", start) - start).days == 30
    with pytest.raises(ValidityError):
        parse_validity("٣٠", start)


def test_resource_paths_with_unicode_digits_sort():
    from pki.auth.resources import _sort_key

    assert sorted(["/ca/10", "/ca/9", "/ca/¹"], key=_sort_key) == ["/ca/9", "/ca/10", "/ca/¹"]


@pytest.mark.parametrize("reference", ["¹", "١٩", "１"])
@pytest.mark.parametrize("reference_type", ["SLOT_ID", "SLOT_INDEX"])
def test_pkcs11_slot_numbers_are_ascii(settings, tmp_path, reference_type, reference):
    """The crypto token layer sits below pki.ids: its own check must refuse other scripts' digits too."""
    from cryptotokens.backends.pkcs11.config import SlotConfig
    from cryptotokens.errors import CryptoTokenError

    library = tmp_path / "lib.so"
    library.write_bytes(b"")
    settings.PKCS11_LIBRARIES = {"Lib": str(library)}
    with pytest.raises(CryptoTokenError, match="is not a slot number"):
        SlotConfig.from_properties({"library": "Lib", "reference_type": reference_type, "reference": reference})

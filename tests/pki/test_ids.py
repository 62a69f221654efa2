"""References that look like ids: only real primary keys are read as one; the rest are names."""

import pytest

from pki.errors import NotFoundError
from pki.ids import is_db_id
from pki.services.cas import get_ca
from pki.services.profiles import get_profile


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

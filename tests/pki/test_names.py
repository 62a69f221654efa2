"""Names administrators give profiles and roles (pki.services.names): trimmed, required, within the column, no
control characters. The profile clone pages read the name straight from the request, without a form: a NUL there
went on to the INSERT, and PostgreSQL answered with an exception (a 500)."""

from __future__ import annotations

import pytest
from django.test import Client

from endentities.models import EndEntityProfile
from endentities.services import profiles as ee_profiles
from pki.errors import ValidationError
from pki.models import CertificateProfile, Role
from pki.services import profiles, roles
from pki.services.names import clean_name
from tests.pki.test_views_auth import ui_client

BAD = [("", "needs a name"), ("   ", "needs a name"), ("x" * 256, "at most 255"), ("a\x00b", "control"),
       ("a\nb", "control"), ("a\x7fb", "control"), ("Ta\tb", "control")]


@pytest.mark.parametrize(("name", "message"), BAD)
def test_bad_names_are_refused(name, message):
    with pytest.raises(ValidationError, match=message) as refused:
        clean_name(name, "thing")
    assert refused.value.field == "name"


@pytest.mark.parametrize(("name", "kept"), [("  Shop TLS  ", "Shop TLS"), ("x" * 255, "x" * 255),
                                             ("Ünïcode – names", "Ünïcode – names")])
def test_good_names_are_kept_trimmed(name, kept):
    assert clean_name(name, "thing") == kept


@pytest.fixture
def ee_source(db) -> EndEntityProfile:
    return EndEntityProfile.objects.create(name="Source", any_ca=True)


@pytest.mark.parametrize(("name", "message"), BAD)
def test_every_service_that_names_a_profile_or_role_refuses_them(actor, builtin_profiles, ee_source, name,
                                                                 message):
    counts = (CertificateProfile.objects.count(), EndEntityProfile.objects.count(), Role.objects.count())
    source = CertificateProfile.objects.get(name="ENDUSER")
    for make in (lambda: profiles.clone_profile(actor, source, name),
                 lambda: ee_profiles.clone_profile(actor, ee_source, name),
                 lambda: roles.create_role(actor, name)):
        with pytest.raises(ValidationError, match=message):
            make()
    assert (CertificateProfile.objects.count(), EndEntityProfile.objects.count(), Role.objects.count()) == counts


@pytest.fixture
def admin(db, builtin_profiles) -> Client:
    client = ui_client("uiadmin", ["/"])
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(("url", "model", "source"), [
    ("/profiles/{pk}/clone/", CertificateProfile, "ENDUSER"),
    ("/endentityprofiles/{pk}/clone/", EndEntityProfile, "Source"),
])
def test_a_nul_in_a_cloned_profiles_name_is_refused_on_the_page(admin, ee_source, tracebacks, url, model, source):
    before = model.objects.count()
    pk = model.objects.get(name=source).pk
    response = admin.post(url.format(pk=pk), "name=a%00b", content_type="application/x-www-form-urlencoded",
                          follow=True)
    assert response.status_code == 200 and "cannot hold control characters" in response.content.decode()
    assert model.objects.count() == before
    assert not tracebacks.records

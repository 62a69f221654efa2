"""Fixtures of the end entity tests (services, enrollment, CLI, REST): a profile, a CA, end entities."""

from __future__ import annotations

from collections.abc import Callable

import pytest

__all__ = ["csr_for", "ee_profile", "ee_profile_factory", "entity_factory"]


@pytest.fixture
def ee_profile_factory(db, builtin_profiles) -> Callable:
    """``ee_profile_factory("Servers", ca=root_ca, **fields)``: a profile whose default CA is ``ca``."""
    from endentities.models import EndEntityProfile
    from pki.models import CertificateProfile

    def make(name: str = "TestEEP", ca=None, **kw):
        fields = {
            "subject_dn_fields": [{"type": "CN", "required": True, "modifiable": True},
                                  {"type": "O", "required": False, "modifiable": True},
                                  {"type": "C", "required": False, "modifiable": True}],
            "subject_alt_name_fields": [{"type": "DNSNAME", "required": False, "modifiable": True},
                                        {"type": "RFC822NAME", "required": False, "modifiable": True}],
            "password_required": True,
            **kw,
        }
        profile = EndEntityProfile.objects.create(name=name, any_ca=True, default_ca=ca, **fields)
        enduser = CertificateProfile.objects.get(name="ENDUSER")
        profile.default_certificate_profile = enduser
        profile.save()
        profile.available_certificate_profiles.set([enduser])
        return profile

    return make


@pytest.fixture
def ee_profile(ee_profile_factory, root_ca):
    return ee_profile_factory("TestEEP", ca=root_ca)


@pytest.fixture
def entity_factory(actor, ee_profile) -> Callable:
    """``entity_factory("alice", password="foo123", **input_fields)`` adds an end entity through the service."""
    from endentities.services import add_end_entity
    from endentities.validation import EndEntityInput

    def make(username: str = "alice", password: str | None = "foo123", subject_dn: str | None = None,
             profile=None, status=None, **kw):
        data = EndEntityInput(username=username, password=password,
                              subject_dn=subject_dn or f"CN={username},O=Test,C=SE", **kw)
        return add_end_entity(actor, data, profile=profile or ee_profile, status=status)

    return make


def csr_for(dn: str):
    """A P-256 PKCS#10 request for ``dn``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki.x509.dn import parse_dn

    key = ec.generate_private_key(ec.SECP256R1())
    return x509.CertificateSigningRequestBuilder().subject_name(parse_dn(dn)).sign(key, hashes.SHA256())

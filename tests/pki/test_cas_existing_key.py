"""Creating a CA on a key that is already on the device (how a CA moves from EJBCA with its HSM key), and a CA
creation that is refused: every field is checked before a key is generated, a key made for a refused CA goes away
again (audited), and the failure is on record although the transaction that tried it rolled back.

Real components: SoftHSM2 (keys put there with softhsm2-util, outside this project), openssl verify.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cryptotokens import services as token_services
from cryptotokens.models import CryptoTokenKeyPair
from pki import audit
from pki.errors import ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.models import AuditEvent, CertificateAuthority, CertificateProfile
from pki.services.cas import CASettings, create_ca
from pki.services.profiles import clone_profile
from tests.conftest import pem
from tests.cryptotokens import conftest as hsm_fixtures
from tests.pki.test_views_auth import ui_client

# The SoftHSM2 fixtures of the crypto token tests, used here too.
softhsm, hsm_label, hsm_settings = hsm_fixtures.softhsm, hsm_fixtures.hsm_label, hsm_fixtures.hsm_settings
hsm_token_factory, hsm_token = hsm_fixtures.hsm_token_factory, hsm_fixtures.hsm_token

EJBCA_KEYS = {"ejbca-rsa": lambda: rsa.generate_private_key(65537, 3072),
              "ejbca-ec": lambda: ec.generate_private_key(ec.SECP384R1())}


@pytest.fixture
def hsm_with_ejbca_keys(hsm_token, softhsm, hsm_label):
    """The HSM token with two keys an earlier CA made: imported with softhsm2-util under their own labels and ids."""
    keys = {}
    for n, (alias, make) in enumerate(EJBCA_KEYS.items(), 1):
        keys[alias] = make()
        softhsm.import_key(hsm_label, keys[alias], alias, bytes([n]) * 4)
    return hsm_token, keys


def _settings(token, **kw) -> CASettings:
    return CASettings(**{"name": "MovedCA", "subject_dn": "CN=Moved CA,O=Test,C=SE", "crypto_token": token,
                         "key_alias": "ejbca-rsa", "key_spec": None, **kw})


def _events(event_type: str, outcome: str | None = None) -> list[AuditEvent]:
    qs = AuditEvent.objects.filter(event_type=event_type).order_by("sequence")
    return list(qs.filter(outcome=outcome) if outcome else qs)


@pytest.mark.parametrize("alias", list(EJBCA_KEYS))
def test_ca_on_a_key_made_before_issues_certificates_openssl_verifies(
        hsm_with_ejbca_keys, actor, builtin_profiles, csr_factory, openssl, alias):
    token, keys = hsm_with_ejbca_keys
    ca = create_ca(actor, _settings(token, key_alias=alias))
    # The CA certificate carries the imported key's public key: the private key never left the HSM.
    assert ca.certificate.public_key().public_numbers() == keys[alias].public_key().public_numbers()
    entry = CryptoTokenKeyPair.objects.get(token=token, alias=alias)
    assert bytes(entry.private_data) == bytes([list(EJBCA_KEYS).index(alias) + 1]) * 4  # found by its CKA_ID
    assert [e.details["alias"] for e in _events("CRYPTOTOKEN_ADOPT_KEYPAIR", "SUCCESS")] == [alias]
    assert not _events("CRYPTOTOKEN_GEN_KEYPAIR")
    csr, _ = csr_factory("CN=leaf.example,O=Test,C=SE", san=["leaf.example"])
    leaf = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr)).certificate
    openssl.write("ca.pem", pem(ca.certificate))
    openssl.write("leaf.pem", pem(leaf))
    assert "leaf.pem: OK" in openssl("verify", "-CAfile", "ca.pem", "leaf.pem").stdout
    assert audit.verify_chain().ok


def test_unknown_alias_is_refused_and_audited(hsm_with_ejbca_keys, actor, builtin_profiles):
    token, _ = hsm_with_ejbca_keys
    with pytest.raises(ValidationError, match="No key pair 'nowhere'.*neither registered nor on its device") as exc:
        create_ca(actor, _settings(token, key_alias="nowhere"))
    assert exc.value.field == "key_alias"
    assert not CertificateAuthority.objects.filter(name="MovedCA").exists()
    (failure,) = _events("CA_CREATION", "FAILURE")
    assert failure.details["key_alias"] == "nowhere" and "nowhere" in failure.details["reason"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"validity": "forever"}, "validity"),
    ({"validity": "0"}, "validity"),
    ({"subject_dn": "CN=x,NOPE=y"}, "subject_dn"),
    ({"signature_algorithm": "SHA256WithRSA"}, "signature_algorithm"),  # an RSA algorithm for a P-256 key
    ({"signature_algorithm": "SHA256WithNothing"}, "signature_algorithm"),
    ({"key_spec": "RSA1000"}, "key_spec"),
    ({"crl_period": timedelta(0)}, "crl_period"),
])
def test_an_invalid_field_generates_no_key(hsm_token, actor, builtin_profiles, changes, field):
    """Was: the key was generated first (one CRYPTOTOKEN_GEN_KEYPAIR per attempt) and the failure never reached
    the audit table. Now: refused before any key work, nothing on the HSM, the refusal on record."""
    settings = _settings(hsm_token, key_alias="newKey", **{"key_spec": "P-256", **changes})
    with pytest.raises(ValidationError) as exc:
        create_ca(actor, settings)
    assert exc.value.field == field
    assert not _events("CRYPTOTOKEN_GEN_KEYPAIR") and not CryptoTokenKeyPair.objects.exists()
    assert token_services.list_device_keys(actor, hsm_token) == []  # nothing was made on the slot
    (failure,) = _events("CA_CREATION", "FAILURE")
    assert failure.details["name"] == "MovedCA" and failure.details["reason"] == exc.value.message
    assert audit.verify_chain().ok


def test_failure_inside_the_transaction_is_kept_and_its_key_removed(hsm_token, actor, builtin_profiles):
    """A refusal only the issuance finds (the CA profile allows RSA keys only, the key is EC): the key was made,
    so it is removed again and that is audited; CERT_CREATION and CA_CREATION failures survive the rollback."""
    rsa_only = clone_profile(actor, CertificateProfile.objects.get(name="ROOTCA"), "ROOTCA-RSA")
    rsa_only.allowed_key_algorithms = ["RSA"]
    rsa_only.save()
    with pytest.raises(ValidationError):
        create_ca(actor, _settings(hsm_token, key_alias="newKey", key_spec="P-256", certificate_profile="ROOTCA-RSA"))
    assert not CertificateAuthority.objects.filter(name="MovedCA").exists()
    assert not CryptoTokenKeyPair.objects.exists() and token_services.list_device_keys(actor, hsm_token) == []
    assert len(_events("CRYPTOTOKEN_GEN_KEYPAIR")) == 1
    (removed,) = _events("CRYPTOTOKEN_DELETE_KEYPAIR")
    assert removed.details["alias"] == "newKey" and "MovedCA" in removed.details["reason"]
    assert len(_events("CERT_CREATION", "FAILURE")) == 1
    (failure,) = _events("CA_CREATION", "FAILURE")
    assert failure.sequence > removed.sequence  # written after the rollback, chained like every other event
    assert audit.verify_chain().ok


def test_failure_events_are_written_outside_a_rolled_back_transaction(db, actor):
    """The mechanism itself: a failure recorded inside a transaction that rolls back stays; a success does not."""
    from django.db import transaction

    with audit.failures_outlive_rollback():
        with pytest.raises(RuntimeError), transaction.atomic():
            audit.record("THING", actor.name, details={"n": 1}, in_transaction=True)
            audit.record_failure("THING", actor.name, "refused", details={"n": 2})
            raise RuntimeError
    assert [(e.outcome, e.details["n"]) for e in _events("THING")] == [("FAILURE", 2)]
    assert audit.verify_chain().ok


# -- the admin UI ----------------------------------------------------------------------------------------------


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin8", ["/"])


def _form(token, **changes) -> dict:
    return {"name": "UiMoved", "subject_dn": "CN=UI Moved,O=Test,C=SE", "crypto_token": token.pk,
            "key_source": "existing", "key_alias": "ejbca-ec", "key_spec": "P-256", "validity": "5y",
            "crl_period_hours": "24", "crl_overlap_hours": "0.5", "delta_crl_period_hours": "0", **changes}


def test_ui_offers_the_device_keys_and_creates_the_ca_on_one(admin, hsm_with_ejbca_keys):
    token, keys = hsm_with_ejbca_keys
    html = admin.get("/cas/new/").content.decode()
    assert 'value="ejbca-ec"' in html and "(on the device, registered when used)" in html
    r = admin.post("/cas/new/", _form(token))
    assert r.status_code == 302, r.content.decode()[-2000:]
    ca = CertificateAuthority.objects.get(name="UiMoved")
    assert ca.certificate.public_key().public_numbers() == keys["ejbca-ec"].public_key().public_numbers()


def test_ui_invalid_field_with_generate_is_a_form_error_and_no_key(admin, hsm_token, actor):
    r = admin.post("/cas/new/", _form(hsm_token, key_source="generate", key_alias="uiNew", validity="whenever"))
    assert r.status_code == 400 and "whenever" in r.content.decode()
    assert not CryptoTokenKeyPair.objects.exists() and token_services.list_device_keys(actor, hsm_token) == []
    assert len(_events("CA_CREATION", "FAILURE")) == 1

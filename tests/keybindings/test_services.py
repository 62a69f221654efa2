"""Key binding services: create, constraints at issue and import, activation, CSR, renew, delete, rules, audit."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

from keybindings import services
from keybindings.models import InternalKeyBinding, KeyBindingCertificate
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.revocation import revoke

AUTH, OCSP = "AuthenticationKeyBinding", "OcspKeyBinding"


def profile(name: str) -> CertificateProfile:
    return CertificateProfile.objects.get(name=name)


def test_create_on_a_new_key_starts_disabled_and_is_audited(binding_factory, kb_token):
    binding = binding_factory("auth1", key_spec="P-256")
    assert binding.status == "DISABLED" and binding.certificate is None
    assert kb_token.key_pairs.filter(alias=binding.key_pair_alias).exists()
    assert AuditEvent.objects.filter(event_type="INTERNALKEYBINDING_CREATE", object_id=str(binding.pk)).exists()


@pytest.mark.parametrize(("kw", "field"), [
    ({"name": ""}, "name"),
    ({"binding_type": "PeerKeyBinding"}, "binding_type"),
    ({"status": "ACTIVE"}, "status"),
    ({"key_spec": "", "key_pair_alias": "missing"}, "key_pair_alias"),
    ({"signature_algorithm": "SHA256WithRSA"}, "signature_algorithm"),  # a P-256 key
    ({"trusted_certificates": [{"ca": "NoSuchCA"}]}, "trusted_certificates"),
    ({"trusted_certificates": [{"ca": "TestRoot", "serial": "xyz"}]}, "trusted_certificates"),
    ({"protocol_and_cipher_suites": ["TLSv1.1;TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]}, None),
    ({"protocol_and_cipher_suites": ["TLSv1.2;TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"]}, "protocol_and_cipher_suites"),
])
def test_create_refusals(actor, kb_token, root_ca, kw, field):
    args = {"name": "bad", "binding_type": AUTH, "crypto_token": kb_token, "key_spec": "P-256", **kw}
    with pytest.raises(ValidationError) as info:
        services.create_binding(actor, **args)
    assert info.value.field == field
    assert not InternalKeyBinding.objects.filter(name="bad").exists()
    assert not kb_token.key_pairs.exists()  # no key left behind by a refused binding


def test_duplicate_name_is_a_conflict(binding_factory):
    binding_factory("same")
    with pytest.raises(ConflictError):
        binding_factory("same", key_spec="", key_pair_alias="same")


# Profiles against the constraints, at issue from a local CA: (binding type, CA key, profile, refusal or None).
ISSUE_CASES = [
    (AUTH, "P-256", "ENDUSER", None),
    (AUTH, "RSA2048", "ENDUSER", None),
    (AUTH, "P-256", "SERVER", "extendedKeyUsage clientAuth"),
    (AUTH, "P-256", "OCSPSIGNER", "extendedKeyUsage clientAuth"),
    (OCSP, "P-256", "OCSPSIGNER", None),
    (OCSP, "P-256", "ENDUSER", "extendedKeyUsage OCSPSigning"),
    (OCSP, "P-256", "SUBCA", "CA certificate"),
]


@pytest.mark.parametrize(("binding_type", "key_spec", "profile_name", "refusal"), ISSUE_CASES)
def test_issue_enforces_the_constraints(actor, binding_factory, root_ca, binding_type, key_spec, profile_name,
                                        refusal):
    binding = binding_factory("b", binding_type=binding_type, key_spec=key_spec)
    before = Certificate.objects.count()
    if refusal is None:
        row = services.issue_certificate(actor, binding, ca=root_ca, profile=profile(profile_name))
        binding.refresh_from_db()
        assert binding.certificate_id == row.pk and row.ca_id == root_ca.pk
        return
    with pytest.raises(ValidationError) as info:
        services.issue_certificate(actor, binding, ca=root_ca, profile=profile(profile_name))
    assert refusal in info.value.message
    assert Certificate.objects.count() == before  # nothing stored
    binding.refresh_from_db()
    assert binding.certificate_id is None


# Certificates built to order, imported: (binding type, key spec, key usages, EKUs, CA flag, refusal or None).
IMPORT_CASES = [
    (AUTH, "P-256", ("digital_signature",), (EKU.CLIENT_AUTH,), False, None),
    (AUTH, "RSA2048", ("digital_signature", "key_encipherment"), (EKU.CLIENT_AUTH,), False, None),
    (AUTH, "RSA2048", ("digital_signature",), (EKU.CLIENT_AUTH,), False, "keyEncipherment is required for an RSA"),
    (AUTH, "P-256", ("key_agreement",), (EKU.CLIENT_AUTH,), False, "digitalSignature is required"),
    (AUTH, "P-256", None, (EKU.CLIENT_AUTH,), False, "digitalSignature is required"),
    (AUTH, "P-256", ("digital_signature",), (EKU.SERVER_AUTH,), False, "clientAuth is required"),
    (AUTH, "P-256", ("digital_signature",), (), False, "clientAuth is required"),
    (AUTH, "P-256", ("digital_signature",), (EKU.CLIENT_AUTH,), True, "CA certificate"),
    (OCSP, "P-256", ("digital_signature",), (EKU.OCSP_SIGNING,), False, None),
    (OCSP, "P-256", ("digital_signature",), (EKU.CLIENT_AUTH,), False, "OCSPSigning is required"),
    (OCSP, "P-256", ("content_commitment",), (EKU.OCSP_SIGNING,), False,
     "digitalSignature is required"),
]


@pytest.mark.parametrize(("binding_type", "key_spec", "ku", "eku", "is_ca", "refusal"), IMPORT_CASES)
def test_import_enforces_the_constraints(actor, binding_factory, root_ca, cert_for, binding_type, key_spec, ku, eku,
                                         is_ca, refusal):
    binding = binding_factory("imp", binding_type=binding_type, key_spec=key_spec)
    cert = cert_for(binding, root_ca, ku=ku, eku=eku, is_ca=is_ca)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if refusal is None:
        row = services.import_certificate(actor, binding, pem)
        assert row.serial == format(cert.serial_number, "x")
        binding.refresh_from_db()
        assert binding.certificate_id == row.pk
        return
    with pytest.raises(ValidationError) as info:
        services.import_certificate(actor, binding, pem)
    assert refusal in info.value.message
    binding.refresh_from_db()
    assert binding.certificate_id is None
    assert AuditEvent.objects.filter(event_type="INTERNALKEYBINDING_CERTIFICATE", outcome="FAILURE").exists()


def test_import_refuses_a_certificate_of_another_key(actor, binding_factory, root_ca, cert_for):
    binding = binding_factory("mine")
    other = binding_factory("other")
    with pytest.raises(ValidationError, match="does not match"):
        services.import_certificate(actor, binding, cert_for(other, root_ca).public_bytes(serialization.Encoding.PEM))


def test_import_refuses_an_unknown_issuer_and_garbage(actor, binding_factory, ca_factory, cert_for):
    binding = binding_factory("mine")
    stranger = ca_factory("Stranger")
    cert = cert_for(binding, stranger)
    stranger.certificate_der = None  # as if that CA were not known here
    stranger.save(update_fields=["certificate_der"])
    with pytest.raises(ValidationError, match="not a CA known here"):
        services.import_certificate(actor, binding, cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValidationError, match="Not a PEM or DER"):
        services.import_certificate(actor, binding, b"garbage")


def test_ocsp_binding_certificate_must_come_from_a_local_ca(actor, binding_factory, root_ca, cert_for):
    from pki.choices import CAStatus

    binding = binding_factory("ocsp", binding_type=OCSP)
    cert = cert_for(binding, root_ca, eku=(EKU.OCSP_SIGNING,))
    root_ca.status = CAStatus.EXTERNAL
    root_ca.save(update_fields=["status"])
    with pytest.raises(ValidationError, match="issued by the local CA it answers for"):
        services.import_certificate(actor, binding, cert.public_bytes(serialization.Encoding.PEM))


def test_activation_needs_a_valid_certificate(actor, binding_factory, root_ca, cert_for):
    binding = binding_factory("act")
    with pytest.raises(ValidationError, match="has no certificate"):
        services.set_status(actor, binding, "ACTIVE")
    row = services.issue_certificate(actor, binding, ca=root_ca, profile=profile("ENDUSER"))
    services.set_status(actor, binding, "ACTIVE")
    binding.refresh_from_db()
    assert binding.status == "ACTIVE"
    assert services.certificate_status(binding)["state"] == "VALID"
    assert services.certificate_status(binding)["days_to_expiry"] > 300
    services.set_status(actor, binding, "DISABLED")
    revoke(actor, row, 1)
    binding.refresh_from_db()
    with pytest.raises(ValidationError, match="revoked certificate"):
        services.set_status(actor, binding, "ACTIVE")
    assert InternalKeyBinding.objects.get(pk=binding.pk).status == "DISABLED"


def test_an_expired_certificate_cannot_be_activated(actor, binding_factory, root_ca):
    import datetime as dt

    binding = binding_factory("old")
    row = services.issue_certificate(actor, binding, ca=root_ca, profile=profile("ENDUSER"))
    Certificate.objects.filter(pk=row.pk).update(not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    binding.refresh_from_db()
    with pytest.raises(ValidationError, match="expired certificate"):
        services.set_status(actor, binding, "ACTIVE")
    assert binding.certificate_state() == "EXPIRED" and binding.days_to_expiry() < 0


@pytest.mark.parametrize("next_key", [False, True])
def test_csr_is_signed_by_the_key_on_the_token(actor, binding_factory, next_key):
    from cryptotokens import services as tokens

    binding = binding_factory("csr", signature_algorithm="SHA384withECDSA")
    if next_key:
        services.generate_next_key(actor, binding)
    pem = services.generate_csr(actor, binding, next_key=next_key, subject_dn="CN=csr,O=Test")
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    alias = binding.next_key_pair_alias if next_key else binding.key_pair_alias
    assert csr.public_key() == tokens.get_private_key(binding.crypto_token, alias).public_key()
    assert csr.signature_hash_algorithm.name == "sha384"
    assert csr.subject.rfc4514_string() == "CN=csr,O=Test"


def test_csr_for_a_next_key_that_does_not_exist_is_refused(actor, binding_factory):
    with pytest.raises(ValidationError, match="no next key"):
        services.generate_csr(actor, binding_factory("nonext"), next_key=True)


def test_renew_switches_to_the_next_key_and_keeps_the_old_certificate(actor, binding_factory, root_ca):
    binding = binding_factory("ren")
    first = services.issue_certificate(actor, binding, ca=root_ca, profile=profile("ENDUSER"))
    services.set_status(actor, binding, "ACTIVE")
    old_alias = binding.key_pair_alias
    second = services.renew(actor, binding)
    binding.refresh_from_db()
    assert binding.certificate_id == second.pk != first.pk
    assert binding.key_pair_alias != old_alias and binding.next_key_pair_alias == ""
    assert second.public_key_sha256 != first.public_key_sha256
    assert second.certificate_profile.name == "ENDUSER" and second.ca_id == root_ca.pk
    assert [(h.certificate_id, h.key_pair_alias) for h in KeyBindingCertificate.objects.filter(binding=binding)] \
        == [(first.pk, old_alias)]
    assert binding.status == "ACTIVE"


def test_renew_refused_by_the_constraints_keeps_everything(actor, binding_factory, root_ca):
    binding = binding_factory("ren2")
    first = services.issue_certificate(actor, binding, ca=root_ca, profile=profile("ENDUSER"))
    with pytest.raises(ValidationError, match="clientAuth"):
        services.renew(actor, binding, profile=profile("SERVER"))
    binding.refresh_from_db()
    assert binding.certificate_id == first.pk and not binding.history.exists()


def test_delete_is_refused_while_an_azure_token_logs_in_with_it(actor, binding_factory, soft_token_factory):
    from cryptotokens.models import CryptoToken

    binding = binding_factory("used")
    token = soft_token_factory("Vault")
    CryptoToken.objects.filter(pk=token.pk).update(properties={"authentication": "KEY_BINDING",
                                                               "key_binding": "used"})
    with pytest.raises(ConflictError, match="crypto token 'Vault'"):
        services.delete_binding(actor, binding)
    assert InternalKeyBinding.objects.filter(pk=binding.pk).exists()
    assert AuditEvent.objects.filter(event_type="INTERNALKEYBINDING_DELETE", outcome="FAILURE").exists()
    CryptoToken.objects.filter(pk=token.pk).update(properties={})
    services.delete_binding(actor, binding)
    assert not InternalKeyBinding.objects.filter(pk=binding.pk).exists()


def test_delete_is_refused_while_a_scep_alias_uses_it_for_intune(actor, binding_factory):
    from protocols.scep.models import ScepAlias

    binding = binding_factory("intune")
    ScepAlias.objects.create(name="mdm", intune_settings={"use_key_binding": "true", "key_binding": "intune"})
    with pytest.raises(ConflictError, match="SCEP alias 'mdm'"):
        services.delete_binding(actor, binding)


def limited(rules: list[str]) -> Actor:
    from pki.auth.access import Actor as A

    who = A.system_actor("limited")

    def allowed(resource: str) -> bool:
        return any(resource == r or resource.startswith(r.rstrip("/") + "/") for r in rules)

    def require(resource: str) -> None:
        if not allowed(resource):
            raise AuthorizationDenied(resource, "limited")

    who.is_allowed = allowed  # type: ignore[method-assign]
    who.require = require  # type: ignore[method-assign]
    return who


@pytest.mark.parametrize(("rules", "operation", "denied"), [
    ([], lambda a, b, ca: services.list_bindings(a), "/internalkeybinding/view"),
    (["/internalkeybinding/view"], lambda a, b, ca: services.set_status(a, b, "DISABLED"),
     "/internalkeybinding/modify"),
    (["/internalkeybinding/view"], lambda a, b, ca: services.generate_csr(a, b), "/internalkeybinding/modify"),
    (["/internalkeybinding/view"], lambda a, b, ca: services.edit_binding(a, b, name="x"),
     "/internalkeybinding/modify"),
    (["/internalkeybinding/view", "/internalkeybinding/modify"], lambda a, b, ca: services.delete_binding(a, b),
     "/internalkeybinding/delete"),
    (["/internalkeybinding"], lambda a, b, ca: services.issue_certificate(a, b, ca=ca, profile=profile("ENDUSER")),
     "/ca/"),
])
def test_access_rules(binding_factory, root_ca, rules, operation, denied):
    binding = binding_factory("guarded")
    with pytest.raises(AuthorizationDenied) as info:
        operation(limited(rules), binding, root_ca)
    assert info.value.resource.startswith(denied)
    assert InternalKeyBinding.objects.get(pk=binding.pk).name == "guarded"


def test_get_binding_by_name_or_id(actor, binding_factory):
    binding = binding_factory("findme")
    assert services.get_binding(actor, "findme").pk == binding.pk
    assert services.get_binding(actor, str(binding.pk)).pk == binding.pk
    with pytest.raises(NotFoundError):
        services.get_binding(actor, "nope")


def test_azure_token_forms_pick_the_login_binding_from_a_list(binding_factory):
    from cryptotokens.backends.azure import AzureCryptoTokenBackend
    from cryptotokens.forms import CryptoTokenCreateForm, param_field_name

    binding_factory("login-cert")
    binding_factory("responder", binding_type=OCSP)
    form = CryptoTokenCreateForm()
    param = next(p for p in AzureCryptoTokenBackend.parameters if p.name == "key_binding")
    field = form.fields[param_field_name(AzureCryptoTokenBackend.type_name, param)]
    names = [value for value, _ in field.choices]
    assert "login-cert" in names and "responder" not in names  # only authentication bindings
    bound = CryptoTokenCreateForm({param_field_name(AzureCryptoTokenBackend.type_name, param): "typo"})
    bound.is_valid()
    assert param_field_name(AzureCryptoTokenBackend.type_name, param) in bound.errors

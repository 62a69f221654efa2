"""Certificate profiles: validation, fixed built-ins, cloning, custom extensions in issued certificates."""

import pytest
from asn1crypto import core
from cryptography import x509

from pki.errors import ConflictError, ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.models import AuditEvent, CertificateProfile
from pki.services.profiles import clone_profile, delete_profile, save_profile


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"validity": "forever"}, "validity", "Cannot read validity"),
        ({"key_usage": ["digitalSignature", "flying"]}, "key_usage", "Unknown key usage: flying"),
        ({"extended_key_usage": ["notAnEku"]}, "extended_key_usage", "known name or a dotted OID"),
        ({"custom_extensions": [{"critical": True}]}, "custom_extensions", "needs an OID"),
        ({"custom_extensions": [{"oid": "x.y"}]}, "custom_extensions", "not a dotted OID"),
        ({"custom_extensions": [{"oid": "1.2.3", "encoding": "JSON"}]}, "custom_extensions", "Encoding must be"),
        ({"allowed_rsa_sizes": [512]}, "allowed_rsa_sizes", "out of range"),
    ],
)
def test_profile_validation(builtin_profiles, actor, values, field, message):
    with pytest.raises(ValidationError, match=message) as info:
        save_profile(actor, "Bad", values)
    assert info.value.field == field
    assert not CertificateProfile.objects.filter(name="Bad").exists()


def test_builtin_profiles_are_fixed_and_clonable(builtin_profiles, actor):
    server = CertificateProfile.objects.get(name="SERVER")
    with pytest.raises(ValidationError, match="fixed profile"):
        save_profile(actor, "SERVER", {"validity": "1y"}, server)
    with pytest.raises(ValidationError, match="cannot be deleted"):
        delete_profile(actor, server)
    clone = clone_profile(actor, server, "MyServer")
    assert clone.key_usage == server.key_usage and not clone.builtin
    edited = save_profile(actor, "MyServer", {"validity": "90", "extended_key_usage": ["serverAuth", "clientAuth"]},
                          clone)
    assert edited.extended_key_usage == ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]
    with pytest.raises(ConflictError):
        save_profile(actor, "SERVER", {}, None)
    assert AuditEvent.objects.filter(event_type__in=["CERTPROFILE_CREATION", "CERTPROFILE_EDIT"]).count() == 2
    delete_profile(actor, edited)
    assert not CertificateProfile.objects.filter(name="MyServer").exists()


def test_profile_used_by_a_ca_cannot_be_deleted(root_ca, actor):
    profile = clone_profile(actor, CertificateProfile.objects.get(name="ROOTCA"), "MyRoot")
    root_ca.certificate_profile = profile
    root_ca.save()
    with pytest.raises(ConflictError, match="used by CA 'TestRoot'"):
        delete_profile(actor, profile)


def test_custom_extensions_static_and_dynamic(root_ca, actor, csr_factory):
    profile = save_profile(actor, "Custom", {
        "key_usage": ["digitalSignature"],
        "custom_extensions": [
            {"oid": "1.2.3.4.1", "critical": False, "encoding": "UTF8String", "value": "static text"},
            {"oid": "1.2.3.4.2", "critical": True, "encoding": "INTEGER", "value": "42"},
            {"oid": "1.2.3.4.3", "critical": False, "encoding": "PrintableString", "dynamic": True},
            {"oid": "1.2.3.4.4", "critical": False, "encoding": "RAW", "value": "0101ff"},
        ],
    })
    csr, _ = csr_factory("CN=custom")
    cert = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=profile, csr=csr,
                                 custom_extension_values={"1.2.3.4.3": "from entity"})).certificate

    def ext(oid):
        return cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))

    assert core.load(ext("1.2.3.4.1").value.value).native == "static text"
    assert ext("1.2.3.4.2").critical and core.load(ext("1.2.3.4.2").value.value).native == 42
    assert core.load(ext("1.2.3.4.3").value.value).native == "from entity"
    assert core.load(ext("1.2.3.4.4").value.value).native is True
    # without the dynamic value the optional extension is left out
    plain = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=profile, csr=csr)).certificate
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.3.4.3"))


def test_extension_override_takes_csr_extensions(root_ca, actor, csr_factory):
    profile = save_profile(actor, "Override", {"allow_extension_override": True, "key_usage": ["digitalSignature"]})
    csr, _ = csr_factory("CN=ovr", san=["csr-san.example"])
    cert = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=profile, csr=csr)).certificate
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["csr-san.example"]


def test_ca_profile_path_length(ca_factory, actor):
    profile = clone_profile(actor, CertificateProfile.objects.get(name="SUBCA"), "SubCA-pl0")
    save_profile(actor, "SubCA-pl0", {"path_length": 0}, profile)
    root = ca_factory("PLRoot")
    sub = ca_factory("PLSub", signed_by=root, certificate_profile="SubCA-pl0")
    bc = sub.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0

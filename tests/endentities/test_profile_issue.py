"""What profile validation produces, issued through the pipeline and read back from the certificate with
cryptography and asn1crypto: special DN fields, every alt-name type, PSD2 QC statement, CA/B Forum
organization identifier, custom extension data."""

import pytest
from asn1crypto import core
from asn1crypto import x509 as a509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from endentities.models import EndEntityProfile
from endentities.validation import EndEntityInput, validate_end_entity
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile
from pki.x509.dn import format_subject_of
from pki.x509.qc import cabf_organization_identifier, psd2_qc_type
from tests.endentities.profile_support import field

# --- the ASN.1 of the seed / ETSI TS 119 495, written here independently of pki.x509.qc --------------------------


class _CABFOrgId(core.Sequence):
    _fields = [
        ("registrationSchemeIdentifier", core.PrintableString),
        ("registrationCountry", core.PrintableString),
        ("registrationStateOrProvince", core.PrintableString, {"implicit": 0, "optional": True}),
        ("registrationReference", core.UTF8String),
    ]


class _Role(core.Sequence):
    _fields = [("oid", core.ObjectIdentifier), ("name", core.UTF8String)]


class _Roles(core.SequenceOf):
    _child_spec = _Role


class _PSD2(core.Sequence):
    _fields = [("roles", _Roles), ("ncaName", core.UTF8String), ("ncaId", core.UTF8String)]


class _Statement(core.Sequence):
    _fields = [("id", core.ObjectIdentifier), ("info", _PSD2, {"optional": True})]


class _Statements(core.SequenceOf):
    _child_spec = _Statement


@pytest.mark.parametrize(
    ("value", "scheme", "country", "state", "reference", "der_hex"),
    [
        ("NTRGB-12345678", "NTR", "GB", None, "12345678", "301313034e5452130247420c083132333435363738"),
        ("NTRUS+CA-12345678", "NTR", "US", "CA", "12345678",
         "301713034e54521302555380024341" "0c083132333435363738"),
        ("VATDE-123456789", "VAT", "DE", None, "123456789", "30141303564154130244450c09313233343536373839"),
        ("PSDBE-NBB-1234.567.890", "PSD", "BE", None, "NBB-1234.567.890",
         "301b1303505344130242450c104e42422d313233342e3536372e383930"),
    ],
)
def test_cabf_organization_identifier_seed_examples(value, scheme, country, state, reference, der_hex):
    der = cabf_organization_identifier(value)
    assert der.hex() == der_hex
    parsed = _CABFOrgId.load(der)
    assert parsed["registrationSchemeIdentifier"].native == scheme
    assert parsed["registrationCountry"].native == country
    assert parsed["registrationStateOrProvince"].native == state
    assert parsed["registrationReference"].native == reference
    if state:  # [0] IMPLICIT PrintableString
        assert bytes.fromhex(der_hex)[11:13] == b"\x80\x02"


def test_psd2_qc_type_asn1():
    der = psd2_qc_type("Financial Conduct Authority", "GB-FCA", ["PSP_AS", "PSP_PI", "PSP_AI", "PSP_IC"])
    parsed = _PSD2.load(der)
    assert parsed["ncaName"].native == "Financial Conduct Authority" and parsed["ncaId"].native == "GB-FCA"
    assert [(r["oid"].dotted, r["name"].native) for r in parsed["roles"]] == [
        ("0.4.0.19495.1.1", "PSP_AS"), ("0.4.0.19495.1.2", "PSP_PI"),
        ("0.4.0.19495.1.3", "PSP_AI"), ("0.4.0.19495.1.4", "PSP_IC"),
    ]


# --- issued certificates --------------------------------------------------------------------------------------

@pytest.fixture
def cert_profile(builtin_profiles):
    return CertificateProfile.objects.create(
        name="EEISSUE", key_usage=["digitalSignature"], use_cabf_organization_identifier=True,
        custom_extensions=[{"oid": "1.5.6", "critical": False, "encoding": "UTF8String", "dynamic": True}],
    )


@pytest.fixture
def ee_profile(root_ca, cert_profile):
    alt_types = ["RFC822NAME", "DNSNAME", "IPADDRESS", "IPADDRESS", "URI", "DIRECTORYNAME", "UPN", "GUID",
                 "KRB5PRINCIPAL", "PERMANENTIDENTIFIER", "SUBJECTIDENTIFICATIONMETHOD", "FASCN", "XMPPADDR",
                 "SRVNAME", "REGISTEREDID"]
    p = EndEntityProfile.objects.create(
        name="Issue", default_ca=root_ca, default_certificate_profile=cert_profile, password_required=False,
        subject_dn_fields=[field("CN"), field("POSTALADDRESS"), field("UNIQUEIDENTIFIER"),
                           field("CERTIFICATIONID"), field("O"), field("C")],
        subject_alt_name_fields=[field(t) for t in alt_types],
        psd2_qc_statement_use=True, cabf_organization_identifier_use=True, custom_extension_data_use=True,
    )
    p.available_certificate_profiles.add(cert_profile)
    return p


def _issue(actor, csr_factory, validated):
    csr, _ = csr_factory("CN=from csr")
    return issue(IssuanceRequest(actor=actor, csr=csr, **validated.issuance_kwargs()))


POSTAL = core.SequenceOf(spec=core.UTF8String, value=["Box 1", "SE-111 11 Stockholm"]).dump()
SIM_PARAMS = "2.16.840.1.101.3.4.2.1::s3cret::1.2.410.200004.10.1.1.10.1::SIIValue"


def test_issued_certificate_carries_every_encoding(ee_profile, actor, csr_factory):
    validated = validate_end_entity(ee_profile, EndEntityInput(
        username="everything",
        subject_dn=(f"CN=Some Common Name,POSTALADDRESS=#{POSTAL.hex()},UNIQUEIDENTIFIER=#03020780,"
                    "CertificationID=BSI-K-TR-1234-2023,O=PrimeKey,C=DE"),
        subject_alt_name=(
            "RFC822NAME=a@example.com, DNSNAME=www.example.com, IPADDRESS=192.0.2.1, "
            "IPADDRESS=2001:DB8:85A3:0:0:8A2E:370:7334, URI=https://example.com/, "
            r"DIRECTORYNAME=CN=Dir\,O=Org, UPN=a@corp.example, GUID=f81d4fae7dec11d0a76500a0c91e6bf6, "
            r"KRB5PRINCIPAL=krbtgt/PRIMEKEY.COM@PRIMEKEY.COM, PERMANENTIDENTIFIER=id\/1/1.2.3.4, "
            f"SUBJECTIDENTIFICATIONMETHOD={SIM_PARAMS}, "
            "FASCN=0419d23210d8210c2c1a843085a16858300842108608823210c3e1, XMPPADDR=tomas@xmpp.domain.com, "
            "SRVNAME=_Service.Name, REGISTEREDID=1.2.3.4.5"
        ),
        psd2_nca_name="Nationale Bank van België", psd2_nca_id="BE-NBB", psd2_roles=["PSP_AI", "PSP_PI"],
        cabf_organization_identifier="NTRUS+CA-12345678",
        custom_extension_data="1.5.6.value = Hello world",
    ))
    issued = _issue(actor, csr_factory, validated)
    der = issued.certificate.public_bytes(Encoding.DER)
    cert = a509.Certificate.load(der)
    tbs = cert["tbs_certificate"]

    # subject: the special DN fields exactly as encoded (asn1crypto; cryptography cannot read a SEQUENCE value)
    values = {}
    for rdn in tbs["subject"].chosen:
        for atv in rdn:
            values[atv["type"].dotted] = core.Sequence.load(atv.dump())[1].dump()
    assert values["2.5.4.16"] == POSTAL
    assert values["2.5.4.45"] == bytes.fromhex("03020780")
    cert_id = core.Sequence.load(values["0.4.0.127.0.7.3.10.1.2"])
    assert cert_id[0].native == 1 and isinstance(cert_id[1], core.PrintableString)
    assert cert_id[1].native == "BSI-K-TR-1234-2023"
    assert core.load(values["2.5.4.3"]).native == "Some Common Name"
    subject_text = format_subject_of(issued.certificate)
    # EJBCA's attribute order: PostalAddress and uniqueIdentifier come before CN
    assert subject_text == (f"POSTALADDRESS=#{POSTAL.hex()},UNIQUEIDENTIFIER=#03020780,CN=Some Common Name,"
                            "CERTIFICATIONID=BSI-K-TR-1234-2023,O=PrimeKey,C=DE")
    assert issued.row.subject_dn == validated.subject_dn

    # alt names, read by cryptography
    exts = {e["extn_id"].dotted: e for e in tbs["extensions"]}
    reread = x509.load_der_x509_certificate(der)
    san = reread.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.1", "2001:db8:85a3::8a2e:370:7334"]
    other = {o.type_id.dotted_string for o in san.get_values_for_type(x509.OtherName)}
    assert other == {"1.3.6.1.4.1.311.20.2.3", "1.3.6.1.4.1.311.25.1", "1.3.6.1.5.2.2", "1.3.6.1.5.5.7.8.3",
                     "1.3.6.1.5.5.7.8.6", "2.16.840.1.101.3.6.6", "1.3.6.1.5.5.7.8.5", "1.3.6.1.5.5.7.8.7"}
    assert len(list(san)) == 15
    # ... and by asn1crypto
    names = exts["2.5.29.17"]["extn_value"].parsed
    assert [n.name for n in names][:6] == ["rfc822_name", "dns_name", "ip_address", "ip_address",
                                           "uniform_resource_identifier", "directory_name"]
    # the row stores the SIM in its computed form, never the password
    assert "s3cret" not in issued.row.subject_alt_name and "s3cret" not in validated.subject_alt_name
    assert issued.row.subject_alt_name == validated.subject_alt_name

    # PSD2 QC statement inside QCStatements
    statements = _Statements.load(exts["1.3.6.1.5.5.7.1.3"]["extn_value"].native)
    assert statements[0]["id"].dotted == "0.4.0.19495.2"
    psd2 = statements[0]["info"]
    assert psd2["ncaName"].native == "Nationale Bank van België" and psd2["ncaId"].native == "BE-NBB"
    assert [r["name"].native for r in psd2["roles"]] == ["PSP_AI", "PSP_PI"]
    # CA/B Forum organization identifier
    cabf = _CABFOrgId.load(exts["2.23.140.3.1"]["extn_value"].native)
    assert (cabf["registrationSchemeIdentifier"].native, cabf["registrationCountry"].native,
            cabf["registrationStateOrProvince"].native, cabf["registrationReference"].native) == \
        ("NTR", "US", "CA", "12345678")
    # custom extension data, in the configured encoding
    assert core.load(exts["1.5.6"]["extn_value"].native).native == "Hello world"


@pytest.mark.parametrize("enabled", [True, False])
def test_cabf_organization_identifier_only_where_the_certificate_profile_enables_it(ee_profile, cert_profile, actor,
                                                                                    csr_factory, enabled):
    """Seed 004: the end entity profile's field gives the value; the certificate profile decides whether the
    extension goes into the certificate."""
    CertificateProfile.objects.filter(pk=cert_profile.pk).update(use_cabf_organization_identifier=enabled)
    ee_profile.default_certificate_profile.refresh_from_db()
    validated = validate_end_entity(ee_profile, EndEntityInput(
        username=f"cabf{enabled}", subject_dn="CN=x", cabf_organization_identifier="NTRGB-12345678"))
    cert = _issue(actor, csr_factory, validated).certificate
    oids = {e.oid.dotted_string for e in cert.extensions}
    assert ("2.23.140.3.1" in oids) is enabled


def test_openssl_reads_the_special_fields(ee_profile, actor, csr_factory, openssl):
    validated = validate_end_entity(ee_profile, EndEntityInput(
        username="ossl", subject_dn=f"CN=x,POSTALADDRESS=#{POSTAL.hex()},CertificationID=BSI-K-TR-0001-2024",
        subject_alt_name="KRB5PRINCIPAL=user@EXAMPLE.COM, XMPPADDR=a@b",
    ))
    cert = _issue(actor, csr_factory, validated).certificate
    path = openssl.write("c.pem", cert.public_bytes(Encoding.PEM))
    text = openssl("x509", "-in", path, "-noout", "-text").stdout
    assert "Subject Alternative Name" in text
    asn1 = openssl("asn1parse", "-in", path).stdout
    assert "postalAddress" in asn1 and "BSI-K-TR-0001-2024" in asn1

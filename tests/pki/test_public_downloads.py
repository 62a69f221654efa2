"""Public downloads without login: CRLs and CA certificates at /crl and /ca, and EJBCA's certdist URL."""

from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from django.test import Client
from django.utils import timezone

from pki.crl import create_crl
from pki.issuance import IssuanceRequest, issue
from pki.models import CRL, CertificateProfile
from tests.conftest import pem

CERTDIST = "/ejbca/publicweb/webdist/certdist"


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def pub_ca(ca_factory):
    return ca_factory("PubCA", delta_crl_period=timedelta(hours=1))


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_der_pem_and_delta(client, pub_ca, actor, openssl):
    CRL.objects.filter(ca=pub_ca).delete()  # the CA was created with its first CRLs: without them, 404
    assert client.get("/crl/PubCA.crl").status_code == 404
    full = create_crl(actor, pub_ca)
    r = client.get("/crl/PubCA.crl")
    assert r.status_code == 200 and r["Content-Type"] == "application/pkix-crl"
    assert 'filename="PubCA.crl"' in r["Content-Disposition"]
    assert crl_number(x509.load_der_x509_crl(r.content)) == full.crl_number
    openssl.write("crl.der", r.content)
    openssl.write("ca.pem", pem(pub_ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in out.stdout + out.stderr
    r = client.get("/crl/PubCA.crl?format=pem")
    assert r["Content-Type"] == "application/x-pem-file" and r.content.startswith(b"-----BEGIN X509 CRL-----")
    assert x509.load_pem_x509_crl(r.content).public_bytes(Encoding.DER) == bytes(full.der)
    assert client.get("/crl/PubCA.crl?delta=true").status_code == 404
    create_crl(actor, pub_ca, delta=True)
    delta = x509.load_der_x509_crl(client.get("/crl/PubCA.crl?delta=true").content)
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == full.crl_number


def test_crl_cache_headers_follow_next_update(client, pub_ca, actor):
    crl = create_crl(actor, pub_ca)  # period: one day, so caches may keep it for the cap of an hour
    r = client.get("/crl/PubCA.crl")
    cache_control = r["Cache-Control"]
    assert "public" in cache_control and "max-age=3600" in cache_control
    assert r["ETag"] and r["Last-Modified"] and r["Expires"]
    CRL.objects.filter(pk=crl.pk).update(next_update=timezone.now() + timedelta(seconds=600))
    assert "max-age=" in (cc := client.get("/crl/PubCA.crl")["Cache-Control"])
    assert 590 <= int(cc.split("max-age=")[1].split(",")[0]) <= 600
    CRL.objects.filter(pk=crl.pk).update(next_update=timezone.now() - timedelta(seconds=5))
    stale = client.get("/crl/PubCA.crl")["Cache-Control"]
    assert "max-age=0" in stale and "must-revalidate" in stale


def test_crl_conditional_get(client, pub_ca, actor):
    create_crl(actor, pub_ca)
    first = client.get("/crl/PubCA.crl")
    again = client.get("/crl/PubCA.crl", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert client.get("/crl/PubCA.crl", HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304
    latest = create_crl(actor, pub_ca)  # a newer CRL: the old ETag no longer matches
    newer = client.get("/crl/PubCA.crl", HTTP_IF_NONE_MATCH=first["ETag"])
    assert newer.status_code == 200 and crl_number(x509.load_der_x509_crl(newer.content)) == latest.crl_number


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", "/crl/Nope.crl", 404),
        ("get", "/crl/PubCA.crl?format=xml", 400),
        ("post", "/crl/PubCA.crl", 405),
        ("head", "/crl/PubCA.crl", 200),
        ("get", "/ca/Nope.crt", 404),
        ("get", "/ca/PubCA.crt?format=txt", 400),
        ("put", "/ca/PubCA.crt", 405),
    ],
)
def test_public_url_refusals_are_plain(client, pub_ca, actor, method, url, status):
    create_crl(actor, pub_ca)
    r = getattr(client, method)(url)
    assert r.status_code == status
    if status in (400, 404):
        assert r["Content-Type"].startswith("text/plain") and r.content.strip()


def test_ca_certificate_der_and_pem(client, root_ca, sub_ca):
    r = client.get("/ca/TestRoot.crt")
    assert r.status_code == 200 and r["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(r.content) == root_ca.certificate
    assert "public" in r["Cache-Control"] and r["ETag"]
    assert client.get("/ca/TestRoot.crt", HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304
    r = client.get("/ca/TestSub.crt?format=pem")
    assert r["Content-Type"] == "application/x-pem-file"
    assert x509.load_pem_x509_certificate(r.content) == sub_ca.certificate


def test_ca_certificate_url_is_the_aia_url_of_issued_certificates(client, ca_factory, actor, csr_factory):
    ca = ca_factory("AiaCA", ca_issuers_url="http://testserver/ca/AiaCA.crt",
                    crl_distribution_point="http://testserver/crl/AiaCA.crl")
    csr, _ = csr_factory("CN=aia-user,O=Test")
    cert = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr)).certificate
    create_crl(actor, ca)
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    url = next(d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS)
    issuer = x509.load_der_x509_certificate(client.get(url.removeprefix("http://testserver")).content)
    cert.verify_directly_issued_by(issuer)
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = cdp[0].full_name[0].value
    crl = x509.load_der_x509_crl(client.get(crl_url.removeprefix("http://testserver")).content)
    assert crl.is_signature_valid(issuer.public_key())


@pytest.mark.parametrize(
    ("query", "status", "kind"),
    [
        ("cmd=crl&issuer={dn}", 200, "crl"),
        ("cmd=CRL&issuer={dn}", 200, "crl"),
        ("cmd=crl&issuer={dn}&format=PEM", 200, "crl-pem"),
        ("cmd=crl&issuer={reordered}", 200, "crl"),
        ("cmd=crl&issuer=CN=TestSub,O=Test,C=SE", 200, "crl"),  # unencoded, as in EJBCA's default CDP
        ("cmd=crl&caid={caid}", 200, "crl"),
        ("cmd=deltacrl&issuer={dn}", 404, None),
        ("cmd=cacert&issuer={dn}&level=0", 200, "sub-pem"),
        ("cmd=cacert&issuer={dn}&level=1", 200, "root-pem"),
        ("cmd=cacert&issuer={dn}", 200, "p7-pem"),
        ("cmd=nscacert&issuer={dn}&level=0", 200, "sub-der"),
        ("cmd=iecacert&issuer={dn}&level=1", 200, "root-der"),
        ("cmd=iecacert&issuer={dn}", 200, "p7-der"),
        ("cmd=cachain&issuer={dn}", 200, "chain"),
        ("cmd=cacert&issuer={dn}&level=2", 404, None),
        ("cmd=cacert&issuer={dn}&level=-1", 404, None),
        ("cmd=cacert&issuer={dn}&level=x", 400, None),
        ("cmd=cachain&issuer={dn}&format=jks", 400, None),
        ("cmd=crl&issuer=CN%3DNobody", 404, None),
        ("cmd=crl&issuer=CN%3Dx%2C%2C", 404, None),
        ("cmd=crl&caid=99999999999999999999", 404, None),
        ("cmd=dance&issuer={dn}", 400, None),
        ("cmd=lastcert&subject=CN%3Dx", 400, None),
        ("cmd=crl", 400, None),
        ("", 400, None),
    ],
)
def test_ejbca_certdist(client, sub_ca, root_ca, actor, query, status, kind):
    create_crl(actor, sub_ca)
    url = CERTDIST + "?" + query.format(dn=quote(sub_ca.subject_dn, safe=""), caid=sub_ca.pk,
                                        reordered=quote("C=SE,O=Test,CN=TestSub", safe=""))
    r = client.get(url)
    assert r.status_code == status, r.content
    if kind is None:
        assert r["Content-Type"].startswith("text/plain")
        return
    if kind == "crl":
        assert x509.load_der_x509_crl(r.content).issuer == sub_ca.certificate.subject
        assert 'filename="TestSub.crl"' in r["Content-Disposition"]
    elif kind == "crl-pem":
        assert x509.load_pem_x509_crl(r.content).issuer == sub_ca.certificate.subject
    elif kind in ("sub-pem", "root-pem"):
        expected = sub_ca.certificate if kind == "sub-pem" else root_ca.certificate
        assert r.content.startswith(b"-----BEGIN CERTIFICATE-----")
        assert x509.load_pem_x509_certificate(r.content) == expected
    elif kind in ("sub-der", "root-der"):
        expected = sub_ca.certificate if kind == "sub-der" else root_ca.certificate
        assert x509.load_der_x509_certificate(r.content) == expected
    elif kind == "p7-pem":
        assert r.content.startswith(b"-----BEGIN PKCS7-----")
        # a PKCS#7 SET OF certificates: DER sorts its members
        assert set(pkcs7.load_pem_pkcs7_certificates(r.content)) == {sub_ca.certificate, root_ca.certificate}
    elif kind == "p7-der":
        assert set(pkcs7.load_der_pkcs7_certificates(r.content)) == {sub_ca.certificate, root_ca.certificate}
    elif kind == "chain":
        assert x509.load_pem_x509_certificates(r.content) == [sub_ca.certificate, root_ca.certificate]


def test_certdist_delta_crl(client, pub_ca, actor):
    dn = quote(pub_ca.subject_dn, safe="")
    CRL.objects.filter(ca=pub_ca, is_delta=True).delete()  # the CA was created with its first delta CRL
    create_crl(actor, pub_ca)
    assert client.get(f"{CERTDIST}?cmd=deltacrl&issuer={dn}").status_code == 404
    create_crl(actor, pub_ca, delta=True)
    r = client.get(f"{CERTDIST}?cmd=deltacrl&issuer={dn}")
    assert r.status_code == 200 and 'filename="delta_PubCA.crl"' in r["Content-Disposition"]
    assert x509.load_der_x509_crl(r.content).extensions.get_extension_for_class(x509.DeltaCRLIndicator)

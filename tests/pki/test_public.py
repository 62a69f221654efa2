"""Public downloads: CRLs and CA certificates, at our URLs and EJBCA's certdist."""

from urllib.parse import quote

import pytest
from cryptography import x509
from django.test import Client

from pki.crl import create_crl


@pytest.fixture
def client():
    return Client()


def test_crl_download_der_pem_delta(client, ca_factory, actor):
    from datetime import timedelta

    ca = ca_factory("PubCA", delta_crl_period=timedelta(hours=1))
    assert client.get("/crl/PubCA.crl").status_code == 404
    full = create_crl(actor, ca)
    r = client.get("/crl/PubCA.crl")
    assert r.status_code == 200 and r["Content-Type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(r.content).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert "max-age=" in r["Cache-Control"] and r["Expires"]
    r = client.get("/crl/PubCA.crl?format=pem")
    assert r.content.startswith(b"-----BEGIN X509 CRL-----")
    assert client.get("/crl/PubCA.crl?delta=true").status_code == 404
    create_crl(actor, ca, delta=True)
    delta = x509.load_der_x509_crl(client.get("/crl/PubCA.crl?delta=true").content)
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == full.crl_number
    assert client.get("/crl/Nope.crl").status_code == 404
    assert client.post("/crl/PubCA.crl").status_code == 405


def test_ca_certificate_download(client, root_ca):
    r = client.get("/ca/TestRoot.crt")
    assert r["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(r.content) == root_ca.certificate
    assert client.get("/ca/TestRoot.crt?format=pem").content.startswith(b"-----BEGIN CERTIFICATE-----")
    assert client.get("/ca/Nope.crt").status_code == 404


@pytest.mark.parametrize(
    ("query", "status", "kind"),
    [
        ("cmd=crl&issuer={dn}", 200, "crl"),
        ("cmd=cacert&issuer={dn}&level=0", 200, "sub"),
        ("cmd=cacert&issuer={dn}&level=1", 200, "root"),
        ("cmd=cacert&issuer={dn}&level=2", 404, None),
        ("cmd=cacert&issuer={dn}&level=x", 400, None),
        ("cmd=deltacrl&issuer={dn}", 404, None),
        ("cmd=crl&issuer=CN%3DNobody", 404, None),
        ("cmd=dance&issuer={dn}", 400, None),
        ("cmd=crl", 400, None),
    ],
)
def test_ejbca_certdist(client, sub_ca, root_ca, actor, query, status, kind):
    create_crl(actor, sub_ca)
    r = client.get("/ejbca/publicweb/webdist/certdist?" + query.format(dn=quote(sub_ca.subject_dn, safe="")))
    assert r.status_code == status
    if kind == "crl":
        assert x509.load_der_x509_crl(r.content).issuer == sub_ca.certificate.subject
    elif kind:
        expected = sub_ca.certificate if kind == "sub" else root_ca.certificate
        assert x509.load_der_x509_certificate(r.content) == expected

"""SCEP answers in /metrics: each CertRep counted by alias, status and failInfo (RFC 8894's names)."""

from __future__ import annotations

import pytest

from protocols.scep.messages import FailInfo, PkiStatus
from tests.pki.test_metrics import scrape, value

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr

pytestmark = pytest.mark.django_db


def test_cert_reps_by_status_and_fail_info(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    before = scrape()
    key = client_key(1)
    refused = scep.enroll(make_csr(key, "CN=router1,O=Test,C=SE", "wrong"), key, scep_ca.certificate)
    assert (refused.status, refused.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    ok = scep.enroll(make_csr(key, "CN=router1,O=Test,C=SE", "foo123"), key, scep_ca.certificate,
                     transaction_id="SECOND")
    assert ok.status == PkiStatus.SUCCESS
    after = scrape()

    def delta(**labels) -> float:
        return value(after, "pki_scep_responses_total", **labels) - value(before, "pki_scep_responses_total", **labels)

    assert delta(alias="scep", status="FAILURE", fail_info="badRequest") == 1
    assert delta(alias="scep", status="SUCCESS", fail_info="") == 1
    # The certificate is also in the issuance count, with its interface.
    assert value(after, "pki_certificates_issued_total", ca="ScepCA", profile="ENDUSER", interface="scep") == 1

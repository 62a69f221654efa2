"""CRL pages: the 'Create CRL' / 'Create delta CRL' buttons (eager and queued), the task status endpoint
the page polls, and refusals shown as messages."""

from __future__ import annotations

import pytest
from cryptography import x509

from pki.crl import create_crl
from pki.models import CRL
from pki.revocation import revoke
from pki.services.cas import edit_ca, import_ca
from pki.tasks import create_crl_task
from tests.conftest import pem
from tests.pki.test_cas import _external_chain
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def queued(settings, monkeypatch):
    """As with a broker: the view queues and redirects to the progress page. A stand-in worker runs the task
    at once in this process and stores its result where the status endpoint looks."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    ran = []

    def delay(*args, **kwargs):
        result = create_crl_task.apply(args, kwargs)
        ran.append(result.id)
        return result

    monkeypatch.setattr(create_crl_task, "delay", delay)
    return ran


def test_crl_page_lists_local_cas_with_buttons_and_links(admin, root_ca, sub_ca, actor):
    import_ca(actor, "Ext", pem(*_external_chain()))
    create_crl(actor, sub_ca)
    html = admin.get("/crls/").content.decode()
    assert f'id="ca-{root_ca.pk}"' in html and f'id="ca-{sub_ca.pk}"' in html and ">Ext<" not in html
    assert html.count(">Create CRL</button>") == 2 and "Create delta CRL" not in html  # no delta period set
    assert 'href="/crl/TestSub.crl"' in html and 'href="/crl/TestSub.crl?format=pem"' in html


def test_create_crl_button_runs_the_task_eagerly(admin, sub_ca, actor, leaf_factory):
    revoke(actor, leaf_factory(), 1)
    r = admin.post(f"/crls/{sub_ca.pk}/create/", follow=True)
    assert r.redirect_chain[-1][0] == "/crls/"
    assert b"CRL #2 for TestSub created (1 entry)" in r.content  # #1 was made with the CA
    crl = CRL.objects.get(ca=sub_ca, crl_number=2)
    assert crl.entries == 1 and not crl.is_delta
    assert x509.load_der_x509_crl(bytes(crl.der)).is_signature_valid(sub_ca.certificate.public_key())


def test_create_delta_crl_button(admin, sub_ca, actor):
    from datetime import timedelta

    CRL.objects.filter(ca=sub_ca).delete()  # the CA was created with its first CRL: take it away
    edit_ca(actor, sub_ca, delta_crl_period=timedelta(hours=1))
    assert b"Create delta CRL" not in admin.get("/crls/").content  # no full CRL to base it on yet
    admin.post(f"/crls/{sub_ca.pk}/create/")
    assert b"Create delta CRL" in admin.get("/crls/").content
    r = admin.post(f"/crls/{sub_ca.pk}/create/", {"delta": "1"}, follow=True)
    assert b"Delta CRL #2 for TestSub created" in r.content
    delta = CRL.objects.get(ca=sub_ca, is_delta=True)
    assert delta.base_crl_number == 1


@pytest.mark.parametrize(
    ("setup", "data", "message"),
    [
        ("none", {"delta": "1"}, "has no full CRL yet"),
        ("external", {}, "is external"),
    ],
)
def test_crl_refusals_are_messages(admin, sub_ca, actor, setup, data, message):
    ca = import_ca(actor, "Ext", pem(*_external_chain())) if setup == "external" else sub_ca
    CRL.objects.all().delete()  # the CAs were created with their first CRLs: take them away
    r = admin.post(f"/crls/{ca.pk}/create/", data, follow=True)
    assert r.status_code == 200 and message in r.content.decode() and "Traceback" not in r.content.decode()
    assert CRL.objects.count() == 0


def test_queued_crl_shows_progress_that_the_status_endpoint_reports(admin, sub_ca, actor, leaf_factory, queued):
    for _ in range(2):
        revoke(actor, leaf_factory(), 1)
    r = admin.post(f"/crls/{sub_ca.pk}/create/")
    task_id = queued[0]
    assert r.status_code == 302 and r["Location"] == f"/crls/?task={task_id}"

    html = admin.get(r["Location"]).content.decode()
    assert f'data-url="/tasks/{task_id}/"' in html and 'id="task-bar"' in html and "task-progress.js" in html

    status = admin.get(f"/tasks/{task_id}/").json()
    assert status["state"] == "SUCCESS" and (status["done"], status["total"]) == (2, 2)
    assert status["result"]["crl_number"] == 2 and status["result"]["entries"] == 2  # #1 came with the CA
    assert status["result"]["crl_id"] == CRL.objects.get(ca=sub_ca, crl_number=2).pk


def test_status_of_an_unknown_task_is_pending(admin):
    assert admin.get("/tasks/no-such-task/").json() == {"state": "PENDING", "done": None, "total": None,
                                                         "result": None}


def test_creating_a_crl_needs_the_rule_and_the_ca(db, root_ca, sub_ca):
    viewer = ui_client("crlviewer", ["/ca_functionality/view_ca", "/ca/"])
    assert b"Create CRL" not in viewer.get("/crls/").content
    r = viewer.post(f"/crls/{sub_ca.pk}/create/")
    assert r.status_code == 403 and b"/ca_functionality/create_crl" in r.content
    limited = ui_client("rootcrl", ["/ca_functionality/view_ca", "/ca_functionality/create_crl", f"/ca/{root_ca.pk}"])
    r = limited.post(f"/crls/{sub_ca.pk}/create/")
    assert r.status_code == 403 and f"/ca/{sub_ca.pk}".encode() in r.content
    assert CRL.objects.count() == 2  # the two CAs' first CRLs only


@pytest.fixture
def leaf_factory(sub_ca, actor, csr_factory, builtin_profiles):
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    def make():
        csr, _ = csr_factory("CN=crl-leaf.example.com")
        return issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                     csr=csr)).row

    return make


def test_crl_on_an_offline_token_is_a_message(admin, ca_factory, soft_token_factory, actor):
    from cryptotokens.services import deactivate

    token = soft_token_factory("Manual", auto_activate=False)
    ca = ca_factory("OfflineCA", token=token)
    deactivate(actor, token)
    r = admin.post(f"/crls/{ca.pk}/create/", follow=True)
    assert r.status_code == 200 and "No CRL for OfflineCA" in r.content.decode()
    assert CRL.objects.count() == 1  # the first CRL, made with the CA

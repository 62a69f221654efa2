"""The data migration of SCEP's approval requirements and requests into the core approvals (scep 0004)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from pki.models.approvals import Approval, ApprovalRequest, ApprovalSetting, ApprovalStatus
from protocols.scep import approvals
from protocols.scep.models import ScepAlias

BEFORE = ("scep", "0003_legacy_digest_help_text")
AFTER = ("scep", "0004_approvals_to_core")


@pytest.mark.django_db(transaction=True)
def test_requirements_and_requests_move_into_the_core(ca_factory, csr_factory, builtin_profiles):
    ca = ca_factory("MigratedCA")
    alias = ScepAlias.objects.create(name="old", operation_mode="ra", ra_default_ca=ca)
    csr, _ = csr_factory("CN=old-device")
    der = csr.public_bytes(Encoding.DER)
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        apps = executor.loader.project_state([BEFORE]).apps
        Requirement, OldRequest = (apps.get_model("scep", n) for n in ("ApprovalRequirement", "ApprovalRequest"))
        Requirement.objects.create(ca_id=ca.pk)
        cp = apps.get_model("pki", "CertificateProfile").objects.get(name="ENDUSER")
        OldRequest.objects.create(alias_id=alias.pk, transaction_id="T-WAIT", username="old-device", ca_id=ca.pk,
                                  certificate_profile_id=cp.pk, request_der=der, requested_by="scep:old",
                                  data={"end_entity_profile": None, "subject_alt_name": ""})
        OldRequest.objects.create(alias_id=alias.pk, transaction_id="T-NO", username="refused", ca_id=ca.pk,
                                  certificate_profile_id=cp.pk, status="REJECTED", decided_by="admin",
                                  comment="unknown device", requested_by="scep:old")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    setting = ApprovalSetting.objects.get()
    assert (setting.ca_id, setting.action, setting.approval_profile.name) == (ca.pk, "ADDEDITENDENTITY",
                                                                              approvals.DEFAULT_PROFILE)
    assert approvals.required(ca, None)
    waiting = ApprovalRequest.objects.get(origin_key="T-WAIT")
    assert (waiting.status, waiting.origin, waiting.operation, waiting.username) == (
        ApprovalStatus.WAITING, f"scep:{alias.pk}", "scep_enrollment", "old-device")
    assert bytes(waiting.request_der) == der and waiting.request_digest and not waiting.is_expired
    assert approvals.request_key(alias, "T-WAIT") is not None  # its key may poll for it
    refused = ApprovalRequest.objects.get(origin_key="T-NO")
    assert refused.status == ApprovalStatus.REJECTED
    assert list(Approval.objects.filter(request=refused).values_list("admin", "approved", "comment")) == [
        ("admin", False, "unknown device")]

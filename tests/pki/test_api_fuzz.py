"""Property-based REST suite: schemathesis generates requests for every operation of /api/schema/.

Each operation gets schema-valid (positive) and schema-breaking (negative) requests, sent through the
whole WSGI stack as a superadmin with HTTP Basic. A run fails on:
- any 5xx reply,
- a reply whose status code, content type or body the schema does not document,
- a "masked exception": a traceback logged while the caller got an ordinary-looking reply,
- a certificate row created by a request that was answered with a failure.

The budget is fixed (``PKI_FUZZ_EXAMPLES`` per operation and mode, 20 by default) and the seed is
derandomized unless ``PKI_FUZZ_RANDOM=1``, so CI runs the same cases each time and stays quick.

The operations are split into ``SHARDS`` tests (operation ``i`` of the label-sorted list goes to shard
``i % SHARDS``), so pytest-xdist spreads them over its workers; every shard checks that the schema still has all
its operations, and one more test that the shards together cover every one of them.
"""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from schemathesis import GenerationMode, checks

from pki.models import Certificate

EXAMPLES = int(os.environ.get("PKI_FUZZ_EXAMPLES", "20"))
DERANDOMIZE = os.environ.get("PKI_FUZZ_RANDOM") != "1"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
SHARDS = 16
USER, PASSWORD = "fuzzadmin", "fuzz-admin-password"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class Findings:
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, label: str, kind: str, reproduce: str) -> None:
        self.failures.setdefault((label, kind), reproduce)


@pytest.fixture
def world(db, settings, actor, root_ca, soft_token_factory):
    """A superadmin with Basic credentials, a CA and a token, so some generated names meet real objects."""
    from django.contrib.auth import get_user_model

    from pki.choices import MemberMatch
    from pki.models import AccessRule, Role, RoleMember

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_user(USER, password=PASSWORD)
    role = Role.objects.create(name="fuzz-superadmin")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=USER)
    soft_token_factory("FuzzToken")
    return root_ca


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " | ".join(line.strip() for line in text[:6] if line.strip())[:400]


def _exercise(operation, mode: GenerationMode, findings: Findings, tracebacks) -> None:
    label = f"{operation.label} [{mode.value}]"

    @hsettings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
               phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        findings.calls[operation.label] += 1
        before = Certificate.objects.count()
        tracebacks.records.clear()
        response = None
        try:
            response = case.call(headers={"Authorization": AUTH})
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # a FailureGroup: record it with a reproduction, keep exploring
            findings.add(label, _first_line(exc), case.as_curl_command())
        if response is None:
            return
        if tracebacks.records and response.status_code < 500:
            record = tracebacks.records[0]
            findings.add(label, f"masked exception {response.status_code}: {record.getMessage()}",
                         case.as_curl_command())
        if response.status_code >= 400 and Certificate.objects.count() != before:
            findings.add(label, f"certificate stored but answered {response.status_code}", case.as_curl_command())

    run()


_SCHEMA: list = []  # the schema served at /api/schema/, loaded once per process (the same in every test)


def _operations() -> list:
    """Every operation of the served schema, sorted by label (the same order on every xdist worker)."""
    if not _SCHEMA:
        from pki.wsgi import application

        _SCHEMA.append(schemathesis.openapi.from_wsgi("/api/schema/?format=json", application,
                                                      headers={"Authorization": AUTH}))
    operations = sorted((result.ok() for result in _SCHEMA[0].get_all_operations()), key=lambda op: op.label)
    assert len(operations) >= 30, "the schema lost operations"
    return operations


def _shard(operations: list, shard: int) -> list:
    return operations[shard::SHARDS]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shard", range(SHARDS), ids=lambda shard: f"shard{shard:02d}of{SHARDS}")
def test_every_operation_survives_generated_requests(world, tracebacks, shard):
    operations = _shard(_operations(), shard)
    assert operations, "an empty shard: fewer operations than SHARDS"

    findings = Findings()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _exercise(operation, mode, findings, tracebacks)

    unexercised = [op.label for op in operations if not findings.calls.get(op.label)]
    assert not unexercised, f"operations never called: {unexercised}"
    report = "\n".join(f"{label}: {kind}\n    {curl}" for (label, kind), curl in sorted(findings.failures.items()))
    assert not findings.failures, f"{len(findings.failures)} failures:\n{report}"


@pytest.mark.django_db(transaction=True)  # the schema request ends as a request does: it closes the connection
def test_the_shards_cover_every_operation_once(world):
    operations = _operations()
    labels = [op.label for op in operations]
    assert len(set(labels)) == len(labels), "two operations share a label"
    sharded = [op.label for shard in range(SHARDS) for op in _shard(operations, shard)]
    assert sorted(sharded) == labels

"""EJBCA's CA uniqueness settings: Enforce unique public keys, unique DN and unique Subject DN SerialNumber.

As in EJBCA, a value is refused when certificates of this CA hold it and none of them belongs to the
requesting username; revoked and expired certificates count too.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from cryptotokens.backends import KeySpec
from pki.choices import CertificateStatus
from pki.errors import ValidationError
from pki.issuance import IssuanceHooks, IssuanceRequest, issue
from pki.models import AuditEvent, Certificate, CertificateAuthority, CertificateProfile
from pki.uniqueness import check_unique, dn_serial_numbers, public_key_sha256
from tests.pki.test_views_auth import ui_client

KEY_REFUSED = "User 'bob' is not allowed to use same key as another user is using."
DN_REFUSED = "User 'bob' is not allowed to use same subject DN as the user(s) 'alice' is/are using"
SN_REFUSED = "Subject DN serialNumber '4711' is already used by another user of CA"


def _key():
    return KeySpec.parse("P-256").generate_software_key()


def _issue(ca, actor, csr_factory, username: str, dn: str, key, **kw):
    csr, _ = csr_factory(dn, key=key)
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr, username=username, **kw))


def _flags(ca, keys: bool, dn: bool, sn: bool = False) -> None:
    ca.enforce_unique_public_keys, ca.enforce_unique_dn, ca.enforce_unique_dn_serial_number = keys, dn, sn
    ca.save()


# (first user, first DN, second user, second DN, same key?, old certificate state, CA flags (keys, dn, sn),
#  expected refusal (field, message start) or None)
CASES = [
    pytest.param("alice", "CN=A", "alice", "CN=A", True, "active", (True, True, False), None,
                 id="same user, same key and DN: renewal allowed"),
    pytest.param("alice", "CN=A", "alice", "CN=A2", True, "active", (True, True, False), None,
                 id="same user, same key, new DN: allowed"),
    pytest.param("alice", "CN=A", "bob", "CN=B", True, "active", (True, True, False), ("public_key", KEY_REFUSED),
                 id="other user, same key: refused"),
    pytest.param("alice", "CN=A", "bob", "CN=B", True, "active", (False, True, False), None,
                 id="other user, same key, unique keys off: allowed"),
    pytest.param("alice", "CN=A", "bob", "CN=B", True, "revoked", (True, True, False), ("public_key", KEY_REFUSED),
                 id="other user, key of a revoked certificate: refused"),
    pytest.param("alice", "CN=A", "bob", "CN=B", True, "expired", (True, True, False), ("public_key", KEY_REFUSED),
                 id="other user, key of an expired certificate: refused"),
    pytest.param("alice", "CN=A", "bob", "CN=A", False, "active", (True, True, False), ("subject_dn", DN_REFUSED),
                 id="other user, same DN: refused"),
    pytest.param("alice", "CN=A", "bob", "CN=A", False, "active", (True, False, False), None,
                 id="other user, same DN, unique DN off: allowed"),
    pytest.param("alice", "CN=A", "bob", "CN=A", False, "revoked", (True, True, False), ("subject_dn", DN_REFUSED),
                 id="other user, DN of a revoked certificate: refused"),
    pytest.param("alice", "CN=A", "bob", "CN=A", False, "expired", (True, True, False), ("subject_dn", DN_REFUSED),
                 id="other user, DN of an expired certificate: refused"),
    pytest.param("alice", "CN=A", "alice", "CN=A", False, "active", (True, True, False), None,
                 id="same user, same DN, new key: allowed"),
    pytest.param("alice", "CN=A,O=X", "bob", "CN=A,O=Y", False, "active", (True, True, False), None,
                 id="other user, different DN: allowed"),
    pytest.param("alice", "CN=A", "bob", "CN=A", True, "active", (False, False, False), None,
                 id="everything off: allowed"),
    pytest.param("alice", "CN=A,SN=4711", "bob", "CN=B,SN=4711", False, "active", (True, True, True),
                 ("subject_dn", SN_REFUSED), id="other user, same DN serialNumber: refused"),
    pytest.param("alice", "CN=A,SN=4711", "bob", "CN=B,SN=4711", False, "active", (True, True, False), None,
                 id="other user, same DN serialNumber, check off: allowed"),
    pytest.param("alice", "CN=A,SN=4711", "alice", "CN=A2,SN=4711", False, "active", (True, True, True), None,
                 id="same user, same DN serialNumber: allowed"),
    pytest.param("alice", "CN=A,SN=47111", "bob", "CN=B,SN=4711", False, "active", (True, True, True), None,
                 id="serialNumber that only starts the same: allowed"),
    pytest.param("alice", "CN=A,SN=4711", "bob", "CN=B,SN=4711", True, "active", (False, False, True),
                 ("subject_dn", SN_REFUSED), id="only the serialNumber rule on: refused"),
    pytest.param("alice", "CN=A,SN=47\\,11", "bob", "CN=B,SN=47\\,11", False, "active", (False, False, True),
                 ("subject_dn", "Subject DN serialNumber '47,11' is already used"),
                 id="escaped serialNumber: refused"),
]


@pytest.mark.parametrize(("user1", "dn1", "user2", "dn2", "same_key", "old_state", "flags", "refusal"), CASES)
def test_uniqueness_table(root_ca, actor, csr_factory, user1, dn1, user2, dn2, same_key, old_state, flags, refusal):
    _flags(root_ca, *flags)
    key = _key()
    first = _issue(root_ca, actor, csr_factory, user1, dn1, key).row
    if old_state == "revoked":
        Certificate.objects.filter(pk=first.pk).update(status=CertificateStatus.REVOKED, revoked_at=timezone.now())
    elif old_state == "expired":
        Certificate.objects.filter(pk=first.pk).update(not_after=timezone.now() - timedelta(days=1))
    before = Certificate.objects.count()
    second_key = key if same_key else _key()
    if refusal is None:
        row = _issue(root_ca, actor, csr_factory, user2, dn2, second_key).row
        assert row.username == user2 and Certificate.objects.count() == before + 1
        return
    field, message = refusal
    with pytest.raises(ValidationError) as err:
        _issue(root_ca, actor, csr_factory, user2, dn2, second_key)
    assert err.value.field == field and err.value.message.startswith(message)
    assert Certificate.objects.count() == before  # nothing stored
    failure = AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").latest("pk")
    assert failure.details["reason"].startswith(message) and failure.details["username"] == user2


def test_keys_and_dns_are_unique_per_ca_only(ca_factory, actor, csr_factory):
    one, two = ca_factory("UniqueOne"), ca_factory("UniqueTwo")
    key = _key()
    _issue(one, actor, csr_factory, "alice", "CN=Shared", key)
    # Another CA has not certified this key or DN: allowed there.
    assert _issue(two, actor, csr_factory, "bob", "CN=Shared", key).row.ca == two


def test_a_key_held_by_several_users_stays_usable_by_each_of_them(root_ca, actor, csr_factory):
    """Certificates issued while the check was off: EJBCA refuses only users outside the holders."""
    _flags(root_ca, keys=False, dn=False)
    key = _key()
    _issue(root_ca, actor, csr_factory, "alice", "CN=A", key)
    _issue(root_ca, actor, csr_factory, "carol", "CN=C", key)
    _flags(root_ca, keys=True, dn=True)
    assert _issue(root_ca, actor, csr_factory, "carol", "CN=C", key).row.username == "carol"
    with pytest.raises(ValidationError, match="same key"):
        _issue(root_ca, actor, csr_factory, "bob", "CN=B", key)


def test_dn_refusal_lists_the_holders(root_ca, actor, csr_factory):
    _issue(root_ca, actor, csr_factory, "alice", "CN=Twin", _key())
    _issue(root_ca, actor, csr_factory, "alice", "CN=Twin", _key())
    with pytest.raises(ValidationError) as err:
        _issue(root_ca, actor, csr_factory, "bob", "CN=Twin", _key())
    assert "as the user(s) 'alice' is/are using" in err.value.message
    assert "'Enforce unique DN' of CA 'TestRoot'" in err.value.message


def test_new_cas_default_to_ejbcas_settings(root_ca):
    assert (root_ca.enforce_unique_public_keys, root_ca.enforce_unique_dn, root_ca.enforce_unique_dn_serial_number) \
        == (True, True, False)


def test_no_queries_when_the_ca_enforces_nothing(root_ca, django_assert_num_queries):
    _flags(root_ca, keys=False, dn=False, sn=False)
    with django_assert_num_queries(0):
        check_unique(root_ca, "anyone", "CN=Anyone,SN=1", "ab" * 32)


def test_public_key_hash_is_stored_at_issuance(root_ca, actor, csr_factory):
    key = _key()
    row = _issue(root_ca, actor, csr_factory, "alice", "CN=Hash", key).row
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    expected = hashlib.sha256(spki).hexdigest()
    assert Certificate.objects.get(pk=row.pk).public_key_sha256 == expected == public_key_sha256(key.public_key())
    assert Certificate.objects.filter(public_key_sha256=expected).count() == 1


@pytest.mark.parametrize(("dn", "serials"), [
    ("CN=A,SN=1", ["1"]), ("CN=A", []), ("SN=a\\,b,CN=x", ["a,b"]), ("CN=A,SN=1,SN=2", ["1", "2"]),
])
def test_dn_serial_numbers(dn, serials):
    assert dn_serial_numbers(dn) == serials


# --- race-freedom across connections (PostgreSQL advisory locks) ------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("shared", ["key", "dn"])
def test_concurrent_issuance_for_two_users_lets_exactly_one_through(ca_factory, actor, csr_factory, shared):
    assert connection.vendor == "postgresql"
    ca = ca_factory(f"Race{shared}")
    key = _key()
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def hold_the_transaction(req, row):
        # Keep the first transaction open after its insert: without a lock the other one would check now,
        # not see the uncommitted row, and pass too.
        time.sleep(0.5)

    def worker(username: str):
        try:
            dn = "CN=Same" if shared == "dn" else f"CN={username}"
            csr, _ = csr_factory(dn, key=key if shared == "key" else _key())
            start.wait()
            results[username] = issue(IssuanceRequest(
                ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"), csr=csr,
                username=username, hooks=IssuanceHooks(on_stored=hold_the_transaction)))
        except Exception as exc:  # collected below
            results[username] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(u,)) for u in ("racer1", "racer2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [r for r in results.values() if isinstance(r, Exception)]
    assert len(results) == 2 and len(refused) == 1, results
    assert isinstance(refused[0], ValidationError)
    assert refused[0].field == ("public_key" if shared == "key" else "subject_dn")
    assert Certificate.objects.filter(ca=ca, is_ca=False).count() == 1


def test_the_holders_query_never_reads_every_certificate_of_the_ca(root_ca):
    """The plan PostgreSQL keeps for the prepared query (a generic one, made before the table has statistics) looks
    the DN and key up by their own indexes; with the CA in the WHERE clause it ANDed an index on ca_id in, reading an
    entry for every certificate of the CA on every issuance."""
    import re

    from pki.uniqueness import _holders_statement

    _, sql, params = _holders_statement([(root_ca.pk, "CN=Plan")], [(root_ca.pk, "ab" * 32)])
    numbered = iter(range(1, len(params) + 1))
    with connection.cursor() as cur:
        cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cur.execute(f"PREPARE test_holders AS {re.sub('%s', lambda _: f'${next(numbered)}', sql)}")
        cur.execute(f"EXPLAIN EXECUTE test_holders({', '.join(['%s'] * len(params))})", params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("DEALLOCATE test_holders")
    assert "subject_dn" in plan and "public_key_sha256" in plan, plan
    assert "ca_id" not in " ".join(line for line in plan.splitlines() if "Cond" in line), plan


# --- admin UI and CLI -------------------------------------------------------------------------------------

@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uniqadmin", ["/"])


def test_create_form_shows_the_options_with_ejbcas_defaults_and_saves_them(admin, soft_token):
    html = admin.get("/cas/new/").content.decode()
    for label in ("Enforce unique public keys", "Enforce unique DN", "Enforce unique Subject DN SerialNumber"):
        assert label in html
    assert _checked(html, "enforce_unique_public_keys") and _checked(html, "enforce_unique_dn")
    assert not _checked(html, "enforce_unique_dn_serial_number")
    r = admin.post("/cas/new/", {
        "name": "UniqUi", "subject_dn": "CN=Uniq UI,O=Test", "crypto_token": soft_token.pk,
        "key_source": "generate", "key_alias": "uniqKey", "key_spec": "P-256", "validity": "5y",
        "crl_period_hours": "24", "crl_overlap_hours": "0.5", "delta_crl_period_hours": "0",
        "enforce_unique_dn": "on", "enforce_unique_dn_serial_number": "on",
    })
    assert r.status_code == 302
    ca = CertificateAuthority.objects.get(name="UniqUi")
    assert (ca.enforce_unique_public_keys, ca.enforce_unique_dn, ca.enforce_unique_dn_serial_number) == \
        (False, True, True)
    detail = admin.get(f"/cas/{ca.pk}/").content.decode()
    assert "Enforce unique public keys</th><td>no" in detail
    assert "Enforce unique DN</th><td>yes" in detail
    assert "Enforce unique Subject DN SerialNumber</th><td>yes" in detail


def _checked(html: str, name: str) -> bool:
    tag = html.split(f'name="{name}"')[1].split(">")[0]
    return "checked" in tag


def test_edit_form_shows_and_saves_the_options(admin, root_ca):
    html = admin.get(f"/cas/{root_ca.pk}/edit/").content.decode()
    assert _checked(html, "enforce_unique_public_keys") and _checked(html, "enforce_unique_dn")
    assert not _checked(html, "enforce_unique_dn_serial_number")
    r = admin.post(f"/cas/{root_ca.pk}/edit/", {
        "description": "", "validity": root_ca.validity, "signature_algorithm": root_ca.signature_algorithm,
        "status": "ACTIVE", "crl_period_hours": "24", "crl_overlap_hours": "0.5", "delta_crl_period_hours": "0",
        "crl_distribution_point": "", "ocsp_url": "", "ca_issuers_url": "",
        "enforce_unique_dn_serial_number": "on",
    })
    assert r.status_code == 302, r.content.decode()[:2000]
    root_ca.refresh_from_db()
    assert (root_ca.enforce_unique_public_keys, root_ca.enforce_unique_dn, root_ca.enforce_unique_dn_serial_number) \
        == (False, False, True)
    event = AuditEvent.objects.filter(event_type="CA_EDITING").latest("pk")
    assert event.details["enforce_unique_public_keys"] == "False"


def test_cli_ca_init_options(db, builtin_profiles):
    call_command("ca", "init", "--caname", "CliUniq", "--dn", "CN=Cli Uniq", "--tokenpass", "foo123",
                 "--keyspec", "P-256", "--no-uniquepublickeys", "--uniquednserialnumber")
    ca = CertificateAuthority.objects.get(name="CliUniq")
    assert (ca.enforce_unique_public_keys, ca.enforce_unique_dn, ca.enforce_unique_dn_serial_number) == \
        (False, True, True)
    call_command("ca", "init", "--caname", "CliDefault", "--dn", "CN=Cli Default", "--tokenpass", "foo123",
                 "--keyspec", "P-256")
    ca = CertificateAuthority.objects.get(name="CliDefault")
    assert (ca.enforce_unique_public_keys, ca.enforce_unique_dn, ca.enforce_unique_dn_serial_number) == \
        (True, True, False)


# --- the migration ---------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("migrations")
def test_migration_fills_the_key_hash_of_existing_certificates_and_leaves_existing_cas_off(root_ca, actor,
                                                                                          csr_factory):
    key = _key()
    row = _issue(root_ca, actor, csr_factory, "alice", "CN=Before migration", key).row
    executor = MigrationExecutor(connection)
    executor.migrate([("pki", "0004_role_member_unique")])
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pki_certificate WHERE id = %s", [row.pk])
            assert cur.fetchone()[0] == 1
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = Certificate.objects.get(pk=row.pk)
    assert migrated.public_key_sha256 == public_key_sha256(key.public_key())
    ca = CertificateAuthority.objects.get(pk=root_ca.pk)
    # An upgrade does not start refusing requests: CAs that existed keep the checks off.
    assert (ca.enforce_unique_public_keys, ca.enforce_unique_dn, ca.enforce_unique_dn_serial_number) == \
        (False, False, False)


@pytest.mark.parametrize("key_spec", ["P-256", "P-384"])
def test_backfill_hashes_explicit_ec_keys_as_issuance_does(ca_factory, soft_token_factory, actor, csr_factory,
                                                           key_spec):
    """ICAO tokens write the curve out in the certificate; the backfill hashes the key's named-curve form,
    the form issuance hashed, so a key certified before the upgrade is still found."""
    module = importlib.import_module("pki.migrations.0005_enforce_unique")
    csca = ca_factory("CSCA", key_spec="P-256", token=soft_token_factory("IcaoToken", explicit_ecc_parameters=True))
    key = KeySpec.parse(key_spec).generate_software_key()
    row = _issue(csca, actor, csr_factory, "ds", "CN=Document Signer,C=SE", key).row
    assert module.spki_sha256(bytes(row.der)) == row.public_key_sha256 == public_key_sha256(key.public_key())
    assert module.spki_sha256(b"not a certificate") == ""

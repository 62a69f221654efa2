"""Fixtures shared by every test area: actors, tokens, CAs, CSRs and an openssl runner.

The suite runs against PostgreSQL (DATABASE_URL, set by `make test`); it refuses to run on SQLite
unless PKI_TEST_ALLOW_SQLITE=1, so a missing database fails loudly instead of testing something else.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("PKI_MASTER_KEY", "test-master-key-not-for-production")
# Each test process counts its own Prometheus samples (pki.metrics): not those of other runs on this machine, nor
# those of the other pytest-xdist worker, which runs SCEP and OCSP tests at the same time (a directory inherited
# from the controller would mix their counts).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
    prefix=f"pki-test-metrics-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)  # one per run left in /tmp


def worker_redis_url() -> str:
    """PKI_TEST_REDIS_URL with a database of this pytest-xdist worker's own (gw0: the URL's, gw1: the one below, ...):
    tests that share counters through Redis clear it (FLUSHDB) and time its keys, and the other worker's tests would
    otherwise clear or hold the same keys at the same moment."""
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = int(url.path.strip("/") or 0)
    return url._replace(path=f"/{(base - int(worker or 0)) % 16}").geturl()


def pytest_configure(config):
    from django.conf import settings

    settings.PROMETHEUS_MULTIPROC_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]

    Path(settings.STATIC_ROOT).mkdir(exist_ok=True)  # whitenoise warns on every request without it
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine and os.environ.get("PKI_TEST_ALLOW_SQLITE") != "1":
        raise pytest.UsageError(
            "The test suite runs against PostgreSQL: set DATABASE_URL=postgres://... (make test does), "
            "or PKI_TEST_ALLOW_SQLITE=1 for a quick local run."
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``@pytest.mark.xdist_group`` keep its tests on one worker again under ``make test``'s --dist loadgroup.

    pytest-xdist (3.8) marks a grouped test by setting ``item._nodeid = "<node id>@<group>"`` on the worker, and its
    scheduler reads the group from that suffix; pytest 9.2 takes the node id from ``item._id`` and ignores
    ``_nodeid``, so every group was split across the workers (each set up the group's live servers). This copies
    xdist's id where pytest reads it; with a pytest that still reads ``_nodeid`` it changes nothing.
    tests/test_xdist_groups.py fails when a grouped test's id lacks its group again."""
    for item in items:
        grouped = item.__dict__.get("_nodeid")
        if grouped and grouped != item.nodeid and hasattr(item, "_id"):
            item._id = type(item._id).parse(grouped)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The test database is a copy of a migrated template (tests/support/templatedb.py), not migrated anew by each
    pytest-xdist worker; pytest-django's per-worker name suffix still applies."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" in database["ENGINE"]:
        from tests.support.templatedb import migrated_template

        database.setdefault("TEST", {})["TEMPLATE"] = migrated_template()


#: What the product uses outside the tests (tests/cryptotokens/test_soft_rounds.py holds the code to these).
PRODUCTION_ROUNDS = {"soft_token_verifier": 200_000, "soft_token_pkcs12": 100_000, "enrollment_code": 100_000}
FAST_ROUNDS = 1_000


@pytest.fixture(autouse=True)
def _fast_key_derivation(settings, monkeypatch):
    """Key derivation at test speed in the test process, as Django advises for password hashers: a soft token's
    authentication-code verifier and its PKCS#12s (200,000 and 100,000 PBKDF2 rounds) and an enrollment code's
    hash (100,000) cost ~0.1 s per CA and per enrollment, thousands of times over. What is derived is the same
    (tests open the PKCS#12s with openssl and keytool); only the round counts differ, and each is stored with its
    result, so a server process the suite starts (gunicorn, manage.py, with the product's counts) still checks
    what a test made. A test that needs the product's counts sets them back (tests/cryptotokens/test_soft_rounds.py)."""
    from cryptotokens.backends import soft

    monkeypatch.setattr(soft, "PBKDF2_ROUNDS", FAST_ROUNDS)
    monkeypatch.setattr(soft, "PKCS12_KDF_ROUNDS", FAST_ROUNDS)
    settings.PKI_ENROLLMENT_CODE_ITERATIONS = FAST_ROUNDS


@pytest.fixture
def actor():
    """The all-powerful system actor (the CLI's)."""
    from pki.auth.access import Actor

    return Actor.system_actor("test")


@pytest.fixture
def builtin_profiles(db):
    from pki.services.profiles import ensure_builtin_profiles

    ensure_builtin_profiles()


@pytest.fixture
def soft_token_factory(db, actor) -> Callable:
    from cryptotokens import services

    counter = {"n": 0}

    def make(name: str | None = None, auth_code: str = "foo123", auto_activate: bool = True, **kw):
        counter["n"] += 1
        return services.create_token(
            actor, name=name or f"token{counter['n']}", token_type="SoftCryptoToken", auth_code=auth_code,
            auto_activate=auto_activate, **kw,
        )

    return make


@pytest.fixture
def soft_token(soft_token_factory):
    return soft_token_factory("TestToken")


@pytest.fixture
def ca_factory(db, actor, builtin_profiles, soft_token_factory) -> Callable:
    """Make a CA: ``ca_factory("Root")`` for a root, ``ca_factory("Sub", signed_by=root)`` for a sub-CA."""
    from pki.services.cas import CASettings, create_ca

    def make(name: str = "TestRoot", key_spec: str = "P-256", signed_by=None, token=None, **kw):
        token = token or soft_token_factory(f"{name}Token")
        settings = CASettings(
            name=name, subject_dn=kw.pop("subject_dn", f"CN={name},O=Test,C=SE"), crypto_token=token,
            key_alias=kw.pop("key_alias", "signKey"), key_spec=key_spec, signed_by=signed_by, **kw,
        )
        return create_ca(actor, settings)

    return make


@pytest.fixture
def root_ca(ca_factory):
    return ca_factory("TestRoot", key_spec="P-256", crl_distribution_point="http://127.0.0.1/crl/TestRoot.crl")


@pytest.fixture
def rsa_root_ca(ca_factory):
    return ca_factory("RsaRoot", key_spec="RSA2048")


@pytest.fixture
def sub_ca(ca_factory, root_ca):
    return ca_factory("TestSub", key_spec="P-256", signed_by=root_ca)


@pytest.fixture
def profile(builtin_profiles):
    from pki.models import CertificateProfile

    return CertificateProfile.objects.get(name="ENDUSER")


@pytest.fixture
def csr_factory() -> Callable:
    """Build a PKCS#10 request: ``csr_factory("CN=x,O=y", key_spec="P-256", san=["a.example"])``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from cryptotokens.backends import KeySpec
    from pki.x509.dn import parse_dn

    def make(dn: str = "CN=Test User,O=Test,C=SE", key_spec: str = "P-256", san: list[str] | None = None,
             key=None):
        key = key or KeySpec.parse(key_spec).generate_software_key()
        builder = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(dn))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in san]), False)
        algorithm = None if key_spec.lower().startswith("ed") else hashes.SHA256()
        return builder.sign(key, algorithm), key

    return make


class OpenSSL:
    """Runs the openssl binary on files in a temporary directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def write(self, name: str, data: bytes) -> Path:
        path = self.workdir / name
        path.write_bytes(data)
        return path

    def __call__(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, cwd=self.workdir)
        if check and proc.returncode != 0:
            raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture
def openssl(tmp_path) -> OpenSSL:
    return OpenSSL(tmp_path)


def pem(*certs) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path_factory):
    """``init`` writes the HTTPS listener's key and superadmin.p12 under VAR_DIR: tests get a directory of their own,
    never the developer's var/ (whose superadmin.p12 a test database would otherwise replace)."""
    settings.VAR_DIR = tmp_path_factory.mktemp("var")


@pytest.fixture(autouse=True)
def _clear_key_cache():
    """Each test opens keys fresh (the per-process cache would otherwise outlive rolled-back rows)."""
    from cryptotokens.services import clear_key_cache

    clear_key_cache()
    yield
    clear_key_cache()


class TracebackLog(logging.Handler):
    """Collects the log records that carry a traceback (``records``; clear it between requests)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture
def tracebacks():
    """Every traceback logged while the test runs: a refusal must be decided, not crashed into."""
    handler = TracebackLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)

"""django-ca's side of ``peer_issuance.py``: run with the interpreter of the virtual environment that holds
django-ca (``scripts/install-peer-bench.sh`` makes ``.venv-peers``), never imported by this project.

django-ca as its documentation sets it up: the default key backend (the CA's private key in a file storage), a
PostgreSQL database of its own, ``Certificate.objects.create_cert(ca, key_backend_options, csr, profile=...)`` per
certificate with the default ``client`` profile. It reads commands on stdin, one JSON object a line, and answers
each with one JSON line:

    {"op": "setup", "database_url": ..., "storage": DIR}                    -> {"ok": true}
    {"op": "ca", "name": "RSA-2048"|"P-256"}                                 -> {"ok": true}
    {"op": "run", "ca": NAME, "csrs": FILE, "first": i, "count": n, "threads": t}
                                                       -> {"seconds": s, "issued": n, "cpu": process CPU seconds}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def _urls() -> list:
    from django.urls import include, path

    return [path("django_ca/", include("django_ca.urls"))]


def __getattr__(name: str):  # the URL configuration, built after settings (ROOT_URLCONF names this module)
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


def _settings(database_url: str, storage: str) -> None:
    from urllib.parse import urlsplit

    import django
    from django.conf import settings

    url = urlsplit(database_url)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="peer-issuance-benchmark",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django_object_actions", "django_ca"],
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": url.path.lstrip("/"),
                               "USER": url.username or "postgres", "PASSWORD": url.password or "",
                               "HOST": url.hostname or "127.0.0.1", "PORT": str(url.port or 5432),
                               "CONN_MAX_AGE": 600}},
        STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                              "OPTIONS": {"location": storage}},
                  "django-ca": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                "OPTIONS": {"location": storage, "file_permissions_mode": 0o600,
                                            "directory_permissions_mode": 0o700}}},
        ROOT_URLCONF=__name__,  # django-ca reverses its CRL and OCSP views into the certificates it issues
        CA_DEFAULT_HOSTNAME="ca.example.com",
        CA_USE_CELERY=False,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class Worker:
    def __init__(self) -> None:
        self.cas: dict = {}
        self.csrs: dict[str, list] = {}

    def setup(self, database_url: str, storage: str) -> dict:
        _settings(database_url, storage)
        return {"ok": True}

    def ca(self, name: str) -> dict:
        from datetime import UTC, datetime, timedelta

        from cryptography import x509
        from cryptography.x509.oid import NameOID
        from django_ca.key_backends import key_backends
        from django_ca.models import CertificateAuthority

        backend = key_backends["default"]
        key_type, size, curve = ("RSA", 2048, None) if name == "RSA-2048" else ("EC", None, "secp256r1")
        options = backend.get_create_private_key_options(key_type, size, curve,
                                                         {"password": None, "path": "ca"})
        ca = CertificateAuthority.objects.init(
            name=f"Peer {name}", key_backend=backend, key_backend_options=options, key_type=key_type,
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Peer {name} CA")]),
            not_after=datetime.now(UTC) + timedelta(days=3650), path_length=0)
        self.cas[name] = ca
        return {"ok": True}

    def run(self, ca: str, csrs: str, first: int, count: int, threads: int) -> dict:
        from cryptography import x509
        from django.db import connection
        from django_ca.models import Certificate, CertificateAuthority
        from django_ca.profiles import profiles

        if csrs not in self.csrs:
            blob = Path(csrs).read_text()
            self.csrs[csrs] = [x509.load_pem_x509_csr(("-----BEGIN" + part).encode())
                               for part in blob.split("-----BEGIN")[1:]]
        requests = self.csrs[csrs][first:first + count]
        per_thread = count // threads
        barrier = threading.Barrier(threads + 1)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                # As a web worker would: its own connection, the CA row and its key options loaded once.
                authority = CertificateAuthority.objects.get(pk=self.cas[ca].pk)
                options = authority.key_backend.get_use_private_key_options(authority, {})
                profile = profiles["client"]
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)
                barrier.abort()
                return
            barrier.wait()
            try:
                for csr in requests[t * per_thread:(t + 1) * per_thread]:
                    Certificate.objects.create_cert(authority, options, csr, profile=profile,
                                                    subject=csr.subject)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)
            finally:
                connection.close()

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        started, cpu = time.perf_counter(), time.process_time()
        for w in workers:
            w.join()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if errors:
            return {"error": f"{errors[0].__class__.__name__}: {errors[0]}"}
        return {"seconds": seconds, "issued": per_thread * threads, "cpu": cpu}


def main() -> None:
    worker = Worker()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            answer = getattr(worker, op)(**command)
        except Exception as exc:  # noqa: BLE001 - the caller prints it and stops
            answer = {"error": f"{exc.__class__.__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()

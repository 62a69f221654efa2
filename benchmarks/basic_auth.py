"""HTTP Basic authentication: CPU per request with DRF's BasicAuthentication (what the API used before) next to
pki.auth.basic (strict parsing, a per-address failure budget answered 429 before hashing, a cache of recent
successes), for a wrong password of a known user, of an unknown user, and a right password.

Requests go through the whole Django stack (middleware, DRF) by calling the WSGI handler directly, one thread,
with Django's default password hasher (PBKDF2-SHA256 at Django's rounds), on a trivial endpoint; the figure is
the process's CPU time per request. Wrong passwords come from one address, as one attacking client's would:
pki.auth.basic checks the first ``PKI_AUTH_FAILURE_LIMIT`` of them, the rest are refused unchecked.

    python benchmarks/basic_auth.py [--requests 20] [--smoke] [--redis redis://127.0.0.1:6379/1]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
import time

from _setup import load, setup_django, table

DATABASE = "pki_bench_basic"
USER, PASSWORD = "bench", "bench-password-1"


def build_views():
    """The trivial endpoint twice: behind DRF's Basic class and behind the project's."""
    from django.urls import path
    from rest_framework.authentication import BasicAuthentication as DrfBasic
    from rest_framework.permissions import IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from pki.auth.basic import BasicAuthentication as PkiBasic

    class Drf(APIView):
        authentication_classes = [DrfBasic]
        permission_classes = [IsAuthenticated]

        def get(self, request):
            return Response({"status": "OK"})

    class Pki(Drf):
        authentication_classes = [PkiBasic]

    return [path("drf/", Drf.as_view()), path("pki/", Pki.as_view())]


urlpatterns: list = []  # filled in main(): this module is the benchmark's URLconf


def run(handler, path: str, user: str, password: str, n: int, ip: str) -> tuple[float, dict[str, int]]:
    """CPU seconds per request over ``n`` requests, and how many got each status."""
    header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    environ_base = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": ip, "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_AUTHORIZATION": header,
    }
    statuses: dict[str, int] = {}

    def start_response(status, response_headers, exc_info=None):
        code = status.split()[0]
        statuses[code] = statuses.get(code, 0) + 1

    start = time.process_time()
    for _ in range(n):
        body = handler(dict(environ_base, **{"wsgi.input": io.BytesIO(b"")}), start_response)
        b"".join(body)
        body.close()
    return (time.process_time() - start) / n, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="Requests per row (the hashed rows use fewer)")
    parser.add_argument("--smoke", action="store_true", help="A few requests per row: checks the script runs")
    parser.add_argument("--redis", default="", help="Use Redis as the Django cache (else the database table)")
    args = parser.parse_args()
    if args.redis:
        os.environ["REDIS_URL"] = args.redis
    setup_django(DATABASE)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import get_hasher
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command

    from pki.models import AuthThrottle

    urlpatterns.extend(build_views())
    settings.ROOT_URLCONF = __name__
    sys.modules.setdefault(__name__, sys.modules["__main__"])
    call_command("createcachetable", verbosity=0)
    cache.clear()
    AuthThrottle.objects.all().delete()
    get_user_model().objects.filter(username=USER).delete()
    get_user_model().objects.create_user(USER, password=PASSWORD)
    handler = WSGIHandler()
    limit = int(settings.PKI_AUTH_FAILURE_LIMIT)
    many = 3 if args.smoke else args.requests
    hashed = 1 if args.smoke else max(2, args.requests // 5)  # each costs a full PBKDF2: keep the run short
    run(handler, "/pki/", USER, PASSWORD, 2, "10.9.9.9")  # warm-up: imports, the first queries
    cache.clear()

    rows = []

    def row(label: str, path: str, user: str, password: str, n: int, ip: str) -> float:
        cpu, statuses = run(handler, path, user, password, n, ip)
        rows.append((label, n, " ".join(f"{k}x{v}" for k, v in sorted(statuses.items())), f"{cpu * 1000:,.1f}"))
        return cpu

    before_wrong = row("DRF Basic: wrong password, known user", "/drf/", USER, "wrong", hashed, "10.0.0.1")
    row("DRF Basic: wrong password, unknown user", "/drf/", "nobody", "wrong", hashed, "10.0.0.2")
    before_right = row("DRF Basic: right password (every call)", "/drf/", USER, PASSWORD, hashed, "10.0.0.3")
    row(f"pki Basic: wrong password, first {limit} from an address", "/pki/", USER, "wrong", limit, "10.0.1.1")
    after_wrong = row("pki Basic: wrong password, over the budget (429)", "/pki/", USER, "wrong", many,
                      "10.0.1.1")
    row("pki Basic: wrong password, unknown user, over the budget", "/pki/", "nobody", "wrong", many, "10.0.1.1")
    AuthThrottle.objects.all().delete()  # the right client is not the attacker: a clean slate
    row("pki Basic: right password, first call (hashed once)", "/pki/", USER, PASSWORD, 1, "10.0.2.1")
    after_right = row("pki Basic: right password, next calls (remembered)", "/pki/", USER, PASSWORD, many,
                      "10.0.2.1")

    print(table(rows, ("request", "n", "statuses", "CPU ms/request")))
    hasher = get_hasher()
    print(f"hasher {hasher.algorithm} ({getattr(hasher, 'iterations', '?')} rounds); cache: "
          f"{'Redis' if args.redis else 'database table'}; load average {load()}")
    print(f"wrong password past the budget: {before_wrong * 1000:,.1f} -> {after_wrong * 1000:,.2f} ms CPU "
          f"({before_wrong / after_wrong:,.0f}x less); right password: {before_right * 1000:,.1f} -> "
          f"{after_right * 1000:,.2f} ms CPU ({before_right / after_right:,.0f}x less)")
    if args.smoke:
        assert after_wrong < before_wrong / 10 and after_right < before_right / 10, "Basic auth costs too much"


if __name__ == "__main__":
    main()

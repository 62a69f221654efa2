"""Settings for pki, driven by environment variables.

DATABASE_URL   database (default: SQLite file var/pki.sqlite3; postgres://... for PostgreSQL)
REDIS_URL      Celery broker; without it Celery tasks run eagerly in-process
PKI_MASTER_KEY key that encrypts secrets at rest (default: generated into var/master.key, mode 0600)
ALLOWED_HOSTS  comma-separated host names
DEBUG          "1"/"true" to turn debug on (off by default)
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PKI_VAR_DIR", BASE_DIR / "var"))


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _flag("DEBUG")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]


def _secret_key() -> str:
    """Django's signing key: from the environment, else derived from the master key (never hard-coded)."""
    if os.environ.get("DJANGO_SECRET_KEY"):
        return os.environ["DJANGO_SECRET_KEY"]
    from cryptotokens.secrets import derive_subkey

    return derive_subkey(b"django-secret-key").hex()


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "cryptotokens",
    "pki",
    "endentities",
    "keybindings",
    "protocols.scep",
    "protocols.ocsp",
    "peers",
]

# WSGI applications that answer their own paths before Django's handler (pki/wsgi.py wraps Django in each, in order):
# the OCSP responder's two paths (protocols/ocsp/endpoint.py; any other path goes on to Django).
PKI_WSGI_ROUTES = ["protocols.ocsp.endpoint.route"]

MIDDLEWARE = [
    # First, so it wraps every other entry: a lost or unreachable database answers 503 + Retry-After, and a
    # request that failed before doing anything is run once more on a new connection (pki/dbhealth.py).
    "pki.dbhealth.DatabaseUnavailableMiddleware",
    # A NUL in the path or query string: 400 before any view looks it up (PostgreSQL's text cannot hold it).
    "pki.http.nul.NulRefusalMiddleware",
    # The client's address for code handed no request (the SCEP RA shared secret's failure budget).
    "pki.auth.throttle.ClientAddressMiddleware",
    # /healthz, /readyz and /metrics answered here, before session/CSRF/auth work they never need; also counts
    # the OCSP responder's answers by responseStatus without touching its code (pki.http.probes).
    "pki.http.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The public SCEP endpoint paths only: answered here, past session/CSRF/auth work it never needs
    # (protocols/scep/middleware.py says what it still adds); every other path goes on down the chain.
    "protocols.scep.middleware.ScepEndpointMiddleware",
    # The same for the peers protocol (/peers/v1/, RA/VA nodes): no session or administrator certificate login.
    "peers.middleware.PeerEndpointMiddleware",
    # request.pki_node (what this node does, for the UI); on an RA/VA node, views that need CA keys answer 403.
    "peers.node.NodeRoleMiddleware",
    # The public OCSP responder's paths, the same way (protocols/ocsp/middleware.py).
    "protocols.ocsp.middleware.OcspEndpointMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Below WhiteNoise (static files keep their caching): Content-Security-Policy on HTML, no-store on everything
    # that names no caching of its own (pki.http.headers).
    "pki.http.headers.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # REST API: cross-site requests with credentials a browser adds by itself (403) and non-JSON bodies (415),
    # refused before any view runs (pki.http.boundary).
    "pki.http.boundary.ApiBoundaryMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Idle and absolute session limits, PKI_SESSION_IDLE_TIMEOUT / PKI_SESSION_MAX_AGE (pki.http.sessions).
    "pki.http.sessions.SessionTimeoutMiddleware",
    # Behind the TLS proxy only: a forwarded, verified client certificate of a role member (pki.auth.clientcert).
    "pki.auth.clientcert.ClientCertificateMiddleware",
    # A session that logged in with a one-time password sees only the password change page (pki.auth.password_change).
    "pki.auth.password_change.PasswordChangeRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pki.urls"
WSGI_APPLICATION = "pki.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pki.views.context.navigation",
                "pki.views.oauth.login_providers",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pki.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        # A kept connection is checked before a request's first query and replaced if its session is gone
        # (a PostgreSQL restart, pg_terminate_backend), instead of failing that request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's, with a health check that needs no round trip while the session was told nothing (pki/postgresql).
    DATABASES["default"]["ENGINE"] = "pki.postgresql"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several threads (runserver, eager Celery) share the file: wait instead of failing on a lock.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # Write transactions take the lock when they begin (BEGIN IMMEDIATE), so a second writer (the other
    # gunicorn worker) queues for it instead of failing with "database is locked" on its first write.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    # ... and those writers queue on a file lock that wakes the next one when the lock is free, instead of
    # SQLite's busy handler, which sleeps up to 100 ms a try (pki/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "pki.sqlite"
    # WAL: readers never wait for the writer, and a commit appends to the log instead of rewriting pages
    # through a rollback journal. synchronous=NORMAL syncs the log at checkpoints, not at every commit: a
    # power loss (not a crash of the process) may lose the last transactions, never corrupt the file — the
    # usual WAL trade, fine for the embedded default; PostgreSQL is the production database.
    DATABASES["default"]["OPTIONS"]["init_command"] = os.environ.get(
        "PKI_SQLITE_PRAGMAS", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
# The hot statements (issuance, audit, SCEP) are prepared once per PostgreSQL session (pki/db.py); turn off
# behind a pooler that shares sessions between clients (PgBouncer in transaction mode).
PKI_DB_PREPARE = _flag("PKI_DB_PREPARE", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/start/"  # on to the first page the roles allow (pki.views.auth.landing; also after OIDC)
LOGOUT_REDIRECT_URL = "/login/"
# Local accounts (the bootstrap admin), then OpenID Connect logins through trusted OAuth providers.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "pki.auth.oidc.ProviderOIDCBackend",
]
# mozilla-django-oidc, per provider (pki.auth.oidc): code flow with PKCE (S256), state and nonce.
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TIMEOUT = 10
OIDC_CREATE_USER = True
# OAuth bearer tokens and ID tokens (pki.auth.oauth): JWKS kept in the shared cache this long, looked up
# from a per-process memo, refreshed on an unknown kid at most once per interval per provider.
PKI_OAUTH_JWKS_CACHE_SECONDS = int(os.environ.get("PKI_OAUTH_JWKS_CACHE_SECONDS", "3600"))
PKI_OAUTH_JWKS_MEMO_SECONDS = int(os.environ.get("PKI_OAUTH_JWKS_MEMO_SECONDS", "60"))
PKI_OAUTH_JWKS_REFRESH_INTERVAL = int(os.environ.get("PKI_OAUTH_JWKS_REFRESH_INTERVAL", "30"))
PKI_OAUTH_HTTP_TIMEOUT = int(os.environ.get("PKI_OAUTH_HTTP_TIMEOUT", "5"))
# A bearer token verified once is accepted again from a per-process memo for this long (never past exp).
PKI_OAUTH_VERIFIED_MEMO_SECONDS = int(os.environ.get("PKI_OAUTH_VERIFIED_MEMO_SECONDS", "60"))
# Guessing limits (pki.auth.throttle): this many failed logins (login form, HTTP Basic) per account name and
# per client address within the window lock it for PKI_AUTH_LOCKOUT_SECONDS, doubled at each further lockout;
# the same for the SCEP RA shared secret per client address. A right HTTP Basic credential is remembered
# (HMAC only) this long so clients that send it on every call are not hashed every time.
PKI_AUTH_FAILURE_LIMIT = int(os.environ.get("PKI_AUTH_FAILURE_LIMIT", "5"))
PKI_AUTH_FAILURE_WINDOW = int(os.environ.get("PKI_AUTH_FAILURE_WINDOW", "600"))
PKI_AUTH_LOCKOUT_SECONDS = int(os.environ.get("PKI_AUTH_LOCKOUT_SECONDS", "60"))
PKI_SCEP_RA_FAILURE_LIMIT = int(os.environ.get("PKI_SCEP_RA_FAILURE_LIMIT", "5"))
PKI_SCEP_RA_FAILURE_WINDOW = int(os.environ.get("PKI_SCEP_RA_FAILURE_WINDOW", "600"))
PKI_BASIC_AUTH_CACHE_SECONDS = int(os.environ.get("PKI_BASIC_AUTH_CACHE_SECONDS", "60"))

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve from the app and project static folders too, so a fresh checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
# Browser sessions end after PKI_SESSION_IDLE_TIMEOUT seconds unused and PKI_SESSION_MAX_AGE seconds after the
# login, checked on the server (pki.http.sessions); the cookie and the stored session expire with the latter.
PKI_SESSION_IDLE_TIMEOUT = int(os.environ.get("PKI_SESSION_IDLE_TIMEOUT", str(30 * 60)))
PKI_SESSION_MAX_AGE = int(os.environ.get("PKI_SESSION_MAX_AGE", str(12 * 3600)))
SESSION_COOKIE_AGE = PKI_SESSION_MAX_AGE
# Content-Security-Policy of HTML pages (pki.http.headers): no inline or foreign script; Swagger UI's bundle
# also needs inline styles and data: images, which the pages allow too.
PKI_CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
PKI_API_DOCS_CONTENT_SECURITY_POLICY = PKI_CONTENT_SECURITY_POLICY
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind nginx (deploy/nginx/pki.conf): X-Forwarded-Proto and the client-certificate headers are believed,
# the latter only from the peers in PKI_TRUSTED_PROXIES (comma-separated addresses/networks). Believed from any
# peer, a forged header would be a login as any certificate member: so no list, no start.
PKI_BEHIND_TLS_PROXY = _flag("PKI_BEHIND_TLS_PROXY")
PKI_TRUSTED_PROXIES = [p.strip() for p in os.environ.get("PKI_TRUSTED_PROXIES", "").split(",") if p.strip()]
# A secret the proxy adds to every request (X-PKI-Proxy-Secret): with it set, the client-certificate headers count
# only on requests that carry it, so another local user who reaches gunicorn's loopback port cannot forge them
# (scripts/serve.py makes one per run for make run's nginx).
PKI_PROXY_SECRET = os.environ.get("PKI_PROXY_SECRET", "")
if PKI_BEHIND_TLS_PROXY:
    import ipaddress

    from django.core.exceptions import ImproperlyConfigured

    if not PKI_TRUSTED_PROXIES:
        raise ImproperlyConfigured(
            "PKI_BEHIND_TLS_PROXY=1 needs PKI_TRUSTED_PROXIES: the addresses or networks of the TLS proxy "
            "(127.0.0.1 for nginx on the same host), or anyone who reaches this server directly could forge "
            "the forwarded client-certificate headers.")
    for _proxy in PKI_TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(_proxy, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"PKI_TRUSTED_PROXIES: {_proxy!r} is not an IP address or network.") from None
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # HTTPS-only cookies, except under `make run`, whose browser port stays plain HTTP beside its HTTPS listener
    # (scripts/serve.py sets PKI_SECURE_COOKIES=0; a loopback-only demo, see README "Serving").
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _flag("PKI_SECURE_COOKIES", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # OAuth bearer tokens first: its challenge names Basic and Bearer, and a refused token gets
        # Bearer error="invalid_token" (pki.auth.bearer).
        "pki.auth.bearer.BearerTokenAuthentication",
        # Basic next: an unauthenticated call then gets 401 with a WWW-Authenticate challenge.
        "pki.auth.basic.BasicAuthentication",
        # Client certificates forwarded by the TLS proxy (before Session, which would demand a CSRF token).
        "pki.auth.clientcert.ClientCertificateAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only (an HTML form cannot send one across sites); an operation that takes another body
    # declares its parser_classes, which pki.http.boundary also honours.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",  # APIClient bodies as real clients send them
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pki.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "pki REST API",
    "DESCRIPTION": "Certificate authority REST API (EJBCA-compatible paths under /ejbca/ejbca-rest-api/v1/).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed package: no CDN (deployments are often offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The error replies every operation can give, documented once (pki/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pki.api.schema.document_error_responses",
    ],
}

# Celery: with no broker the tasks run in-process, so the zero-configuration start needs no server.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_STORE_EAGER_RESULT = True  # the task status endpoint can then answer in eager mode too
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "regenerate-crls": {
        "task": "pki.tasks.regenerate_due_crls",
        "schedule": float(os.environ.get("PKI_CRL_CHECK_INTERVAL", "60")),
    },
    # SCEP transactions and senderNonces past their retention (protocols.scep.transactions).
    "purge-scep-transactions": {"task": "protocols.scep.tasks.purge_transactions", "schedule": 600.0},
    # The certificate expiration check: one e-mail per certificate expiring within PKI_EXPIRY_NOTIFY_DAYS.
    "notify-expiring-certificates": {
        "task": "endentities.tasks.notify_expiring_certificates",
        "schedule": float(os.environ.get("PKI_EXPIRY_CHECK_INTERVAL", "3600")),
    },
}
# Certificates expiring within this many days get a notice (0: no notices), to their end entity's e-mail address
# and to these comma-separated addresses.
PKI_EXPIRY_NOTIFY_DAYS = int(os.environ.get("PKI_EXPIRY_NOTIFY_DAYS", "30"))
PKI_EXPIRY_NOTIFY_ADMINS = os.environ.get("PKI_EXPIRY_NOTIFY_ADMINS", "")

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        # Without Redis: a table in the database, so every web process sees the same entries (JWKS,
        # provider generations, rate limits); `manage.py init` and the test database create it.
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "pki_cache"}
    )
}

# Where the CA publishes its CRLs and certificates (used in CDP/AIA defaults).
PKI_BASE_URL = os.environ.get("PKI_BASE_URL", "http://127.0.0.1:8000")
# Peers (issue 18): what this node is. "ca" holds CAs and keys and connects out to RA/VA nodes; "ra" holds no CA
# keys and forwards every operation that needs a CA to the CA connected to it; "va" answers from pushed status.
PKI_NODE_ROLE = os.environ.get("PKI_NODE_ROLE", "ca").strip().lower() or "ca"
if PKI_NODE_ROLE not in ("ca", "ra", "va"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"PKI_NODE_ROLE must be ca, ra or va, not {PKI_NODE_ROLE!r}")
# RA: seconds a forwarded request is held open waiting for the CA's answer (then 503 + Retry-After).
PKI_PEER_REQUEST_TIMEOUT = float(os.environ.get("PKI_PEER_REQUEST_TIMEOUT", "30"))
# RA: seconds a CA connector holds a leased request before the RA hands it out again (the connector died).
PKI_PEER_LEASE_SECONDS = float(os.environ.get("PKI_PEER_LEASE_SECONDS", "20"))
# SCEP: the CA of CA-mode requests that name none (EJBCA's scep.defaultca); an alias may set its own.
PKI_SCEP_DEFAULT_CA = os.environ.get("PKI_SCEP_DEFAULT_CA", "")
# OCSP answers are valid (nextUpdate, and max-age of GET answers without nonce) for this many seconds; 0 = no
# nextUpdate (clients must ask every time).
PKI_OCSP_VALIDITY = int(os.environ.get("PKI_OCSP_VALIDITY", "300"))
# Protocol/cipher pairs authentication key bindings may use, EJBCA's authkeybind.ciphersuite form
# ("TLSv1.3;TLS_AES_256_GCM_SHA384,TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"); empty: keybindings.tls's
# default (TLS 1.3 suites and TLS 1.2 ECDHE with AES-GCM). An entry Python's ssl cannot do is refused when used.
PKI_TLS_CIPHER_SUITES = os.environ.get("PKI_TLS_CIPHER_SUITES", "")

# End entity e-mail notifications go through Django's e-mail backend (SMTP unless EMAIL_BACKEND says otherwise).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _flag("EMAIL_USE_TLS")
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "pki@localhost")
# Enrollment codes: PBKDF2 rounds of their stored hash; server-side P12 encryption ("3DES" as EJBCA, or "AES256").
PKI_ENROLLMENT_CODE_ITERATIONS = int(os.environ.get("PKI_ENROLLMENT_CODE_ITERATIONS", "100000"))
PKI_P12_ENCRYPTION = os.environ.get("PKI_P12_ENCRYPTION", "3DES")
PKI_BCFKS_PROVIDER_JAR = os.environ.get("PKI_BCFKS_PROVIDER_JAR", "/usr/share/java/bcprov.jar")
# Characters refused in subject DN values, alt names, usernames and e-mail (EJBCA's forbidden.characters).
# The environment value may write \n \r \0 as escapes; an empty value forbids nothing.
PKI_FORBIDDEN_CHARACTERS = (
    os.environ["PKI_FORBIDDEN_CHARACTERS"].replace("\\n", "\n").replace("\\r", "\r").replace("\\0", "\0")
    if "PKI_FORBIDDEN_CHARACTERS" in os.environ
    else "\n\r;!\0%`?$~"
)
# Redact subject DNs and alt names from logs and audit details for every profile (System Configuration).
PKI_REDACT_SUBJECT_NAMES = _flag("PKI_REDACT_SUBJECT_NAMES")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The Azure SDK logs every HTTP request at INFO.
        "azure": {"level": "WARNING"},
        "botocore": {"level": "WARNING"},
    },
}

# Crypto token backends.
# PKCS#11 libraries operators may choose from: name -> path of the module (SoftHSM2's is the default here).
PKCS11_LIBRARIES = {
    name.strip(): path.strip()
    for name, _, path in (
        item.partition("=") for item in os.environ.get(
            "PKCS11_LIBRARIES", "SoftHSM2=/usr/lib/softhsm/libsofthsm2.so"
        ).split(",") if item.strip()
    )
}
# Attribute files (templates of key attributes applied at generation), name -> path.
PKCS11_ATTRIBUTE_FILES = {
    name.strip(): path.strip()
    for name, _, path in (item.partition("=") for item in os.environ.get("PKCS11_ATTRIBUTE_FILES", "").split(","))
    if name.strip()
}
# Endpoint overrides so tests (moto, a local Key Vault server) and private endpoints can be used.
AWS_KMS_ENDPOINT_URL = os.environ.get("AWS_KMS_ENDPOINT_URL", "")
AZURE_KEYVAULT_URL_TEMPLATE = os.environ.get("AZURE_KEYVAULT_URL_TEMPLATE", "https://{vault}.vault.azure.net")
AZURE_AUTHORITY_HOST = os.environ.get("AZURE_AUTHORITY_HOST", "")
AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE = _flag("AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE", True)
# CA bundle for Key Vault and Azure AD connections (a TLS-inspecting proxy, or the tests' local server).
AZURE_CA_BUNDLE = os.environ.get("AZURE_CA_BUNDLE", "")

# Health and metrics (pki/services/health.py, pki/http/probes.py, pki/metrics.py).
# A CA certificate (key binding certificate) counts as expiring this many days before its end, at most a fifth of
# its validity: the CA list, the dashboard, /readyz and the metrics flag it.
PKI_CA_RENEWAL_WINDOW_DAYS = int(os.environ.get("PKI_CA_RENEWAL_WINDOW_DAYS", "90"))
PKI_KEYBINDING_RENEWAL_WINDOW_DAYS = int(os.environ.get("PKI_KEYBINDING_RENEWAL_WINDOW_DAYS", "30"))
# Who may read /metrics: comma-separated client networks (the client as pki.auth.throttle.client_address sees it,
# so behind the trusted proxy the forwarded address); empty = nobody.
PKI_METRICS_ALLOWED = [n.strip() for n in os.environ.get("PKI_METRICS_ALLOWED", "127.0.0.1/32,::1/128").split(",")
                       if n.strip()]
# /readyz answers from one check per process at most this often (anonymous callers cannot load the database).
PKI_READYZ_CACHE_SECONDS = float(os.environ.get("PKI_READYZ_CACHE_SECONDS", "2"))
# prometheus_client's multiprocess mode: each process (gunicorn workers, Celery workers, the scheduler) of this
# host writes its counters into this directory and /metrics adds them up. Set before prometheus_client is
# imported (it reads the variable then); scripts/serve.py empties it at start.
PROMETHEUS_MULTIPROC_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics"))
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# EJBCA's "Enable End Entity Profile Limitations": the per end entity profile access rules
# (/endentityprofilesrules/<id>/<action>) are enforced; off, RA rights cover every end entity profile.
PKI_END_ENTITY_PROFILE_LIMITATIONS = _flag("PKI_END_ENTITY_PROFILE_LIMITATIONS", True)

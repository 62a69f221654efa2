"""CA side: an HTTP request that entered an RA (a REST call at ``/ejbca/ejbca-rest-api/v1/``, an RA portal page)
run here by this node's own view, as the caller the RA authenticated.

No second implementation: the carried method, path, query and body become a request for the CA's own URL
configuration, and the view that answers the same path here answers it, with its own serializers, access rules,
audit events and error bodies; the RA returns the status, body and a few headers unchanged. Only the routes of
:data:`REST_ROUTES` and :data:`PORTAL_ROUTES` are carried; anything else is refused before a view runs (at the RA,
before it is queued: see :func:`rest_route_at_ra`).

Who the caller is, is decided here by this node's rules, from what the RA forwards:

* a client certificate the RA's TLS proxy verified: authenticated by the CA's client-certificate rules
  (a certificate of our CA, known, not revoked, not expired, matched to role members), through
  :data:`pki.auth.clientcert.CARRIED_CERT_KEY`, an environ key no HTTP request can set;
* an ``Authorization`` header (OAuth bearer token, Basic): checked here by the REST API's own authentication
  classes (signature, issuer, audience, expiry against this CA's trusted providers; the password of a local user).

The RA's own roles play no part: an RA only authenticates (TLS) and forwards, the CA authorizes (as EJBCA's RA).
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.urls import Resolver404, resolve

from pki.auth.clientcert import CARRIED_CERT_KEY

logger = logging.getLogger("peers")

REST_PREFIX = "/ejbca/ejbca-rest-api/"
#: Where carried REST calls live: EJBCA's REST API, this project's approval requests (EJBCA's RA decides approvals
#: at the RA too) and its reads of one certificate (an RA holds none of its own).
REST_PREFIXES = (REST_PREFIX, "/api/v1/approvals/", "/api/v1/certificates/", "/api/v1/cas/")
#: The REST operations an RA carries, by URL name on this node: what an integration (or an approver) uses at
#: EJBCA's RA, each answered by the CA, which authorizes the caller by its own rules.
REST_ROUTES = frozenset({
    # v1 enrollment and end entities
    "api-certificate-pkcs10enroll", "api-certificate-enrollkeystore", "api-certificate-certificaterequest",
    "api-endentity-add", "api-endentity-edit", "api-endentity-search", "api-endentity-setstatus",
    "api-endentity-revoke", "api-endentity-delete", "api-endentity-status",
    # v1 certificates
    "api-certificate-search", "api-certificate-revoke", "api-certificate-revocation-status",
    "api-certificate-status", "api-certificate-expire",
    # v1 CAs: the list, the chain, the latest CRL, and a CRL now (the CA signs it: EJBCA's RA passes it on too)
    "api-ca-list", "api-ca-status", "api-ca-certificate-download", "api-ca-latest-crl", "api-ca-create-crl",
    # v2
    "api-v2-certificate-status", "api-v2-certificate-count", "api-v2-certificate-search",
    "api-v2-certificate-profile", "api-v2-certificate-keyrecover",
    "api-v2-endentity-status", "api-v2-endentity-profiles-authorized", "api-v2-endentity-profile",
    "api-v2-endentity-search",
    # approvals: an enrollment that waited for approval finalized, the requests listed, read and decided
    "api-certificate-finalize",
    "api-approval-list", "api-approval-detail", "api-approval-approve", "api-approval-reject",
    # this project's reads of one certificate, by fingerprint or by CA and serial
    "api-certificate-detail", "api-ca-certificate-detail",
})
#: REST routes an RA answers itself, about the RA node: its own roles (those admit the CA's connector), its own
#: crypto tokens (the key-making ones stay refused, :mod:`peers.node`), its configuration dump, its own services,
#: and the resources this project answers "not available" everywhere. Every other REST route is refused at an RA
#: (CA administration such as activating a CA or importing a CRL is done at the CA): a route added later is
#: neither carried nor answered from the RA's database until it is named here or in :data:`REST_ROUTES`.
RA_LOCAL_REST_ROUTES = frozenset({
    "api-role-list", "api-role-detail", "api-role-members", "api-role-member", "api-role-rules",
    "cryptotoken-status", "cryptotoken-activate", "cryptotoken-deactivate", "cryptotoken-generatekeys",
    "cryptotoken-listkeys", "cryptotoken-adoptkey", "cryptotoken-removekeys",
    "api-configdump-status", "api-configdump-zip", "api-configdump", "api-configdump-type", "api-configdump-setting",
    "api-system-service-run", "api-ssh", "api-etsi",
})
#: HEAD is answered by the view's GET (as Django does here), its body left out of the carried answer.
REST_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE"})
MAX_BODY = 1024 * 1024
#: The largest REST answer carried back (bytes, before base64): the RA takes the connector's answers as JSON bodies
#: of Django's default upload limit (2.5 MB), and one answer too large for it would be lost with the others posted
#: beside it. A larger answer (a big CA's latest CRL) is refused here with a clear 502 instead.
MAX_ANSWER_BODY = 1024 * 1024
#: Headers of the CA's answer that the RA repeats (Content-Type goes separately): ``Allow`` says a 405's methods.
KEPT_HEADERS = ("Retry-After", "Content-Disposition", "Location", "WWW-Authenticate", "Allow")


def answer_of(response: HttpResponse, actor: str = "") -> dict[str, Any]:
    """A view's response as carried back to the RA: status, content type, body (base64), kept headers."""
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    body = b"".join(response) if getattr(response, "streaming", False) else response.content
    headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    return {"status": response.status_code, "content_type": response.get("Content-Type", ""),
            "body": base64.b64encode(body).decode(), "headers": headers, "actor": actor}


def json_answer(status: int, message: str) -> dict[str, Any]:
    """An answer in the REST API's error shape (``{"error_code", "error_message"}``)."""
    body = json.dumps({"error_code": status, "error_message": message}).encode()
    return {"status": status, "content_type": "application/json", "body": base64.b64encode(body).decode(),
            "headers": {}, "actor": ""}


def carried_certificate(identity: dict[str, Any]) -> x509.Certificate | None:
    """The client certificate in a carried identity (PEM), or None."""
    pem = identity.get("certificate")
    if not isinstance(pem, str) or not pem or len(pem) > 16384:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None


def presented_identity(identity: Any) -> str:
    """How a carried request's caller presents itself (for the queue and the audit log; never a secret)."""
    identity = identity if isinstance(identity, dict) else {}
    if identity.get("certificate"):
        cert = carried_certificate(identity)
        if cert is None:
            return "client certificate (unreadable)"
        return f"client certificate {format(cert.serial_number, 'x')} ({cert.subject.rfc4514_string()})"[:255]
    login = identity.get("login")
    if isinstance(login, dict):  # a carried RA portal login: the name it claims (the password never shown)
        return f"RA portal login of {str(login.get('username', ''))[:150]!r}"
    if isinstance(identity.get("oidc"), dict):  # a step of an RA portal OIDC login (its code is a credential)
        return f"RA portal OIDC login ({str(identity['oidc'].get('action', ''))[:16]})"
    if identity.get("session"):  # the CA's answer names the user; the key itself is a credential
        return "RA portal session"
    scheme = str(identity.get("authorization", "")).strip().partition(" ")[0][:16]
    return f"{scheme or 'no'} authorization"


def _address(value: Any) -> str:
    """The caller's IP address as the RA saw it, or '' when it is not one."""
    try:
        return str(ipaddress.ip_address(str(value or "")[:64]))
    except ValueError:
        return ""


def _host() -> str:
    """A host name this node accepts (views that build URLs ask the request for one)."""
    for host in settings.ALLOWED_HOSTS:
        if host and "*" not in host and not host.startswith("."):
            return host
    return "localhost"


def build_request(payload: dict[str, Any], body: bytes, cert: x509.Certificate | None,
                  extra: Iterable[tuple[str, str]] = ()) -> WSGIRequest:
    """A request for this node's views, made of the carried parts only (never the RA's other headers)."""
    identity = payload.get("identity") if isinstance(payload.get("identity"), dict) else {}
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(payload.get("method", "GET")).upper(),
        "PATH_INFO": str(payload.get("path", "/")), "SCRIPT_NAME": "",
        "QUERY_STRING": str(payload.get("query", ""))[:8192],
        "CONTENT_TYPE": str(payload.get("content_type", ""))[:255], "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": _host(), "SERVER_PORT": "443", "HTTP_HOST": _host(), "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": _address(payload.get("client_address")),
        "HTTP_ACCEPT": str(payload.get("accept") or "*/*")[:255],
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "https", "wsgi.version": (1, 0),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    authorization = identity.get("authorization")
    if isinstance(authorization, str) and authorization and len(authorization) <= 16384:
        environ["HTTP_AUTHORIZATION"] = authorization
    if cert is not None:
        environ[CARRIED_CERT_KEY] = cert
    for key, value in extra:
        environ[key] = value
    return WSGIRequest(environ)


def _call(match, request: WSGIRequest) -> HttpResponse:
    """The view's response; an exception it raises answered as Django's handler answers it here (Http404 -> the
    404 page, PermissionDenied -> 403, ...), so the RA gets what a caller at the CA would get."""
    from django.core.handlers.exception import response_for_exception

    from pki.dbhealth import is_unavailable

    try:
        return match.func(request, *match.args, **match.kwargs)
    except Exception as exc:  # noqa: BLE001 - turned into the response Django would send
        if is_unavailable(exc):
            raise  # no database: the item stays unanswered and comes back when its lease runs out
        return response_for_exception(request, exc)


def decode_body(payload: dict[str, Any]) -> bytes | None:
    """The carried body, or None when it is not base64 or too large."""
    try:
        body = base64.b64decode(str(payload.get("body", "")), validate=True)
    except (binascii.Error, ValueError):
        return None
    return body if len(body) <= MAX_BODY else None


def rest_route_at_ra(path: str, url_name: str | None) -> str:
    """What an RA does with a request for ``path`` (resolved to ``url_name``): ``"carry"`` it to the CA, answer
    it ``"local"``-ly (not a REST call, or one about the RA itself), or ``"refuse"`` it (a REST route of the CA
    an RA does not carry)."""
    if url_name in REST_ROUTES:
        return "carry"
    if not path.startswith(REST_PREFIXES) or url_name in RA_LOCAL_REST_ROUTES:
        return "local"
    return "refuse"


def run_rest(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer one carried REST call with this node's own view for its path."""
    method, path = str(payload.get("method", "")).upper(), payload.get("path")
    if method not in REST_METHODS or not isinstance(path, str) or not path.startswith(REST_PREFIXES) \
            or len(path) > 2048 or "\x00" in path:
        return json_answer(400, "Not a REST call an RA may carry.")
    try:
        match = resolve(path)
    except Resolver404:
        return json_answer(404, f"No resource at {path[:200]}.")
    if match.url_name not in REST_ROUTES:
        return json_answer(404, f"{path[:200]} is not carried through an RA.")
    body = decode_body(payload)
    if body is None:
        return json_answer(400, "The carried body is not base64 or is too large.")
    identity = payload.get("identity") if isinstance(payload.get("identity"), dict) else {}
    cert = carried_certificate(identity)
    if identity.get("certificate") and cert is None:
        return json_answer(400, "The carried client certificate could not be read.")
    request = build_request(payload, body, cert)
    request.resolver_match = match
    response = _call(match, request)
    answer = answer_of(response, actor_name(request, response))
    if method == "HEAD":  # the GET's status and headers, its length, no body (as a HEAD at this node answers)
        answer["headers"]["Content-Length"] = str(len(base64.b64decode(answer["body"])))
        answer["body"] = ""
    size = len(answer["body"]) * 3 // 4
    if size > MAX_ANSWER_BODY:
        logger.warning("Carried %s %s: the answer (%d bytes) is too large to carry back to the RA", method,
                       path[:200], size)
        return {**json_answer(502, f"The CA's answer ({size} bytes) is larger than an RA carries "
                                   f"({MAX_ANSWER_BODY} bytes): ask the CA directly, or for a CRL its CRL "
                                   "distribution point."), "actor": answer["actor"]}
    return answer


def actor_name(request: WSGIRequest, response: HttpResponse) -> str:
    """Who the view ran as (the actor it asked for: on DRF's request, or on the request itself), else the user DRF
    authenticated (DRF also sets it on the request itself: a view answering a file, not DRF's ``Response``, leaves
    no other trace of it), else ''."""
    drf_request = (getattr(response, "renderer_context", None) or {}).get("request")
    for holder in (drf_request, request):
        actor = getattr(holder, "_pki_actor", None) if holder is not None else None
        if actor is not None:
            return actor.name
    for holder in (drf_request, request):
        user = getattr(holder, "user", None) if holder is not None else None
        if user is not None and user.is_authenticated:
            return str(user.get_username())
    return ""


PORTAL_PREFIX = "/ra/"
#: The RA portal pages an RA carries: every page of the portal an operator uses at EJBCA's RA, each answered by
#: the CA's own view as the operator: Make New Request (CSR or server-generated keystore, the pasted CSR's subject),
#: Use Username, end entities (search, view, edit, re-enroll, revoke, bulk revoke), certificates (search, view,
#: download, revoke, bulk revoke) and approval requests (list, view, approve/reject).
PORTAL_ROUTES = frozenset({
    "ra-home", "ra-enroll", "ra-use-username", "ra-csr-subject",
    "ra-ee-search", "ra-ee-detail", "ra-ee-edit", "ra-ee-reenroll", "ra-ee-revoke", "ra-ee-bulk-revoke",
    "ra-cert-search", "ra-cert-detail", "ra-cert-revoke", "ra-cert-bulk-revoke", "ra-cert-download",
    "ra-approval-list", "ra-approval-detail", "ra-approval-decide",
})
#: RA portal pages an RA answers itself: its login with the CA's password (:mod:`peers.portal_ra`), the password
#: change carried as a login, and the CA certificates and CRLs the CA pushed here (public). Any other ``/ra/`` page
#: is refused at an RA: a page added later is neither carried nor answered from the RA's database (which holds no
#: end entities, certificates or approvals) until it is named here or in :data:`PORTAL_ROUTES`.
RA_LOCAL_PORTAL_ROUTES = frozenset({"ra-portal-login", "ra-portal-password", "ra-ca-downloads"})
PORTAL_METHODS = frozenset({"GET", "HEAD", "POST"})  # HEAD: the GET's status and headers, no body


def portal_route_at_ra(path: str, url_name: str | None) -> str:
    """What an RA does with a request for ``path`` (resolved to ``url_name``): ``"carry"`` an RA portal page to the
    CA, answer it ``"local"``-ly (not an RA portal page, or the RA's own login), or ``"refuse"`` it (an RA portal
    page not carried)."""
    if url_name in PORTAL_ROUTES:
        return "carry"
    if not path.startswith(PORTAL_PREFIX) or url_name in RA_LOCAL_PORTAL_ROUTES:
        return "local"
    return "refuse"


class CarriedMessages:
    """Django's messages for a carried page: those the RA holds for the caller come in, the ones a view adds (and
    the page did not show) go back to the RA, which shows them on the next page."""

    @staticmethod
    def storage(request: WSGIRequest, incoming: Any):
        from django.contrib.messages.storage.base import BaseStorage, Message

        class Storage(BaseStorage):
            def _get(self, *args, **kwargs):
                loaded = []
                for entry in incoming if isinstance(incoming, list) else []:
                    if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int):
                        loaded.append(Message(entry[0], str(entry[1])[:2048], str(entry[2] or "")[:64] or None))
                return loaded, True

            def _store(self, messages, response, *args, **kwargs):
                return []

        return Storage(request)

    @staticmethod
    def outgoing(storage) -> list[list[Any]]:
        """What the view queued and the page did not show."""
        pending = list(storage._queued_messages) + ([] if storage.used else list(storage._loaded_messages))
        return [[m.level, str(m.message), m.extra_tags or ""] for m in pending]


def portal_page(text: str, status: int) -> dict[str, Any]:
    """A plain refusal page for a carried portal request that never reached a view."""
    from django.utils.html import escape

    body = f"<!doctype html><title>RA</title><p>{escape(text)}</p>".encode()
    return {"status": status, "content_type": "text/html; charset=utf-8", "body": base64.b64encode(body).decode(),
            "headers": {}, "actor": "", "messages": []}


def _portal_login(request: WSGIRequest, login: Any, connector_pk: int | None) -> dict[str, Any]:
    """A carried RA portal login, checked here (:mod:`peers.portal_sessions`): the new session's key for the RA,
    or the refusal (401 wrong name or password, 429 throttled, 403 must change the password first: ``must_change``
    tells the RA to ask for a new one, which it carries with the next login; 400 a new password not accepted)."""
    from . import portal_sessions

    login = login if isinstance(login, dict) else {}
    if connector_pk is None:
        return portal_page("A login is carried by a peer connector only.", 400)
    key, user, reason = portal_sessions.login(request, login.get("username"), login.get("password"), connector_pk,
                                              login.get("new_password"))
    if key is None:
        if reason.startswith("throttled:"):
            answer = portal_page("Too many failed logins: try again later.", 429)
            answer["headers"] = {"Retry-After": reason.partition(":")[2]}
            return answer
        if reason == "must-change":
            return {**portal_page("This account has a one-time password: choose your own password to go on.", 403),
                    "must_change": True}
        if reason.startswith("new-password:"):
            return {**portal_page(reason.partition(":")[2] or "The new password is not accepted.", 400),
                    "must_change": True}
        return portal_page("Wrong user name or password.", 401)
    body = json.dumps({"session": key, "username": user.get_username()}).encode()
    return {"status": 200, "content_type": "application/json", "body": base64.b64encode(body).decode(),
            "headers": {}, "actor": user.get_username(), "messages": []}


def run_portal(payload: dict[str, Any], connector_pk: int | None = None) -> dict[str, Any]:
    """Answer one carried RA portal request with this node's own portal view, as the caller the RA forwarded: a
    client certificate its TLS proxy verified, or the key of an RA portal session (:mod:`peers.portal_sessions`)
    made through the connector ``connector_pk``; or run a carried login or logout of such a session."""
    from importlib import import_module

    from pki.auth.clientcert import ClientCertificateRefused, authenticate_request

    from . import portal_sessions

    method, path = str(payload.get("method", "")).upper(), payload.get("path")
    identity = payload.get("identity") if isinstance(payload.get("identity"), dict) else {}
    body = decode_body(payload)
    if "login" in identity or "oidc" in identity or payload.get("logout") is True:
        if body is None:
            return portal_page("The carried request could not be read.", 400)
        request = build_request({**payload, "method": "POST", "path": "/ra/login/", "query": ""}, b"", None)
        if "oidc" in identity:  # an OpenID Connect login's step (peers.portal_sessions)
            return portal_sessions.run_oidc(request, identity["oidc"], connector_pk)
        if "login" in identity:
            return _portal_login(request, identity["login"], connector_pk)
        ended = portal_sessions.logout(request, identity.get("session"), connector_pk)
        return {**portal_page("Logged out." if ended else "There was no such session.", 200), "session_ended": True}
    if method not in PORTAL_METHODS or not isinstance(path, str) or not path.startswith(PORTAL_PREFIX) \
            or len(path) > 2048 or "\x00" in path:
        return portal_page("Not an RA portal page an RA may carry.", 400)
    try:
        match = resolve(path)
    except Resolver404:
        return portal_page("No such page.", 404)
    if match.url_name not in PORTAL_ROUTES:
        return portal_page("This page is not carried through an RA.", 404)
    session_key = identity.get("session")
    cert = carried_certificate(identity)
    if body is None or (cert is None and not session_key):
        return portal_page("The carried request could not be read.", 400)
    csrf = payload.get("csrf")
    extra = [("CSRF_COOKIE", csrf)] if isinstance(csrf, str) and 0 < len(csrf) <= 64 else []
    request = build_request(payload, body, None if session_key else cert, extra)
    request.resolver_match = match
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()  # not saved: state stays on the RA
    if session_key:
        try:
            user, actor = portal_sessions.caller_of(session_key, connector_pk)  # a local or an OAuth user
        except portal_sessions.SessionEnded as exc:
            return {**portal_page(f"Your session at the CA has ended ({exc}): log in again.", 403),
                    "session_ended": True}
    else:
        try:
            user = authenticate_request(request)
        except ClientCertificateRefused as exc:
            return portal_page(f"The CA refused your client certificate: {exc}.", 403)
        if user is None:
            return portal_page("Your client certificate is not one of the CA's.", 403)
        actor = user.pki_actor
    request.user = user
    request._pki_actor = actor
    request._messages = storage = CarriedMessages.storage(request, payload.get("messages"))
    response = _call(match, request)
    result = answer_of(response, actor.name)
    if method == "HEAD":
        result["headers"]["Content-Length"] = str(len(base64.b64decode(result["body"])))
        result["body"] = ""
    result["messages"] = CarriedMessages.outgoing(storage)
    return result

"""The RA portal on an RA node (``PKI_NODE_ROLE=ra``): the pages of :data:`peers.carried_http.PORTAL_ROUTES`
(Make New Request with a CSR or a server-generated keystore, Use Username, end entities and certificates: search,
view, edit, revoke, download; approval requests) are carried to the CA and answered by the CA's own portal views,
as the operator (client certificate or a login below). Any other ``/ra/`` page but the RA's own login pages is
refused here with a page that says so: nothing of the portal is answered from this RA's database.

The RA checks what it can check: the CSRF token (the CA renders its forms with this RA's CSRF secret, so the next
POST passes here) and a client certificate its TLS proxy verified. The CA authenticates the certificate by its own
rules and authorizes every page against its access rules. Messages a CA page queued for the next page (after a
redirect) are kept here and carried with that next page. When the CA does not answer in time, the page says so
(503 with ``Retry-After``) and does not pretend the request failed: a Make New Request the CA received may still
be completed, so the operator searches before sending it again.

An operator without a client certificate logs in at ``/ra/login/`` with the user name and password they have at
the CA: the RA carries that one login to the CA, which checks it (its throttling, lockout and audit) and answers
with the key of a session record it keeps (:mod:`peers.portal_sessions`). The RA keeps only that key, in this
operator's session here (a new session key at login), and forwards it instead of a certificate with every page;
the password is in the RA's database only inside the login's work item until the CA answered it. Logging out
(the pages' "Log out" button, which posts to ``/logout/``) ends the record at the CA and the session here; when the CA
ended the record (user disabled, deleted, password changed, idle), the next page sends the operator to log in.
The portal session gives nothing on the RA's own admin pages: it is not a login here.

The login page also lists the CA's trusted OAuth providers that allow a browser login (the RA asks the CA for them
through the queue and keeps the list for a minute in the shared cache). Choosing one carries the choice to the CA,
which builds the authorization request (state, nonce, PKCE) with this RA's login page as the callback URL and
keeps the attempt, bound to the connector; the RA keeps the state in the operator's session and sends the browser
to the provider. The provider sends it back to ``/ra/login/?code=...&state=...``: a state this browser did not
start is refused here, unqueued; otherwise the code and state are carried to the CA, which redeems the code,
verifies the ID token and answers with a session record as for a password login (:mod:`peers.portal_sessions`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import CsrfViewMiddleware, get_token, rotate_token
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_safe

from pki.auth import throttle

from . import queue
from .carried_http import MAX_BODY, portal_route_at_ra, presented_identity
from .choices import WorkKind
from .models import PeerWorkItem
from .rest_ra import RETRY_AFTER, caller_identity, carry_and_wait, is_ra, reply

logger = logging.getLogger("peers")
#: This RA's session key holding the operator's RA portal session at the CA: {"key", "username"}.
PORTAL_SESSION = "pki_ra_portal_session"
#: This RA's session key holding an OIDC login this browser started: {"state", "next"}.
OIDC_PENDING = "pki_ra_portal_oidc"
#: The shared cache's entry for the CA's login providers ({"providers": [...], "answered": bool}).
PROVIDERS_CACHE_KEY = "pki:ra-portal:oidc-providers"
PROVIDERS_SECONDS, PROVIDERS_UNANSWERED_SECONDS, PROVIDERS_WAIT = 60, 15, 3.0
LOGIN_PATH = "/ra/login/"


def carried_portal_view(request: HttpRequest) -> bool:
    """Whether this request is an RA portal page this RA answers through :func:`forward_portal`: one it carries
    to the CA, or one it refuses (any other ``/ra/`` page but its own login)."""
    match = getattr(request, "resolver_match", None)
    return match is not None and portal_route_at_ra(request.path_info, match.url_name) != "local"


def _page(request: HttpRequest, title: str, message: str, status: int, retry: str = "") -> HttpResponse:
    return render(request, "peers/portal_unavailable.html", {"title": title, "message": message, "retry": retry},
                  status=status)


def forward_portal(request: HttpRequest, view_func) -> HttpResponse:
    """The RA's answer to one carried portal page (see the module doc)."""
    match = request.resolver_match
    if portal_route_at_ra(request.path_info, match.url_name) == "refuse":
        logger.info("RA portal %s %s refused at the RA: page %s is not carried to the CA", request.method,
                    request.path, match.url_name)
        return _page(request, "Not available at this RA",
                     "This page of the RA portal is not available through an RA node: use it at the CA.", 404)
    portal = portal_session(request)
    if portal is not None:
        identity: dict[str, str] | None = {"session": portal["key"]}
    else:
        identity = caller_identity(request)
    if identity is None or not ("certificate" in identity or "session" in identity):
        if request.method == "GET":
            return HttpResponseRedirect(f"{LOGIN_PATH}?{urlencode({'next': request.get_full_path()})}")
        return _page(request, "Log in first",
                     "The RA portal on this RA node works with your client certificate or after you log in with "
                     "your user name and password at the CA (Log in, /ra/login/).", 403)
    forwarded = {"session": identity["session"]} if "session" in identity else {"certificate": identity["certificate"]}
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = MAX_BODY + 1
    if declared > MAX_BODY:
        return _page(request, "Request too large", f"The request is larger than {MAX_BODY} bytes.", 413)
    body = request.body if request.method == "POST" else b""  # before the CSRF check parses (and consumes) it
    refused = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, view_func, (), {})
    if refused is not None:
        return refused
    get_token(request)  # this RA's CSRF secret, which the CA's forms then carry
    storage = messages.get_messages(request)
    pending = [[m.level, str(m.message), m.extra_tags or ""] for m in storage]
    payload = {"method": request.method, "path": request.path_info, "query": request.META.get("QUERY_STRING", ""),
               "content_type": request.META.get("CONTENT_TYPE", ""), "accept": request.META.get("HTTP_ACCEPT", ""),
               "body": base64.b64encode(body).decode(), "identity": forwarded,
               "csrf": request.META.get("CSRF_COOKIE", ""), "messages": pending}
    if not queue.storable(payload):  # as peers.rest_ra.forward_rest: after pki.http.nul, any other such text
        return _page(request, "Bad request", "The request holds a NUL character.", 400)
    done = carry_and_wait(request, WorkKind.PORTAL_PAGE, payload)
    if done is None:
        if request.method == "POST":
            text = ("The CA did not answer in time. Your request may still be completed by the CA: search for it "
                    "before you send it again.")
        else:
            text = "The CA did not answer in time. Try again in a moment."
        response = _page(request, "The CA is not answering", text, 503, retry=request.get_full_path())
        response["Retry-After"] = RETRY_AFTER
        return response
    result = done.result or {}
    for entry in result.get("messages") or []:
        if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int):
            messages.add_message(request, entry[0], str(entry[1])[:2048], extra_tags=str(entry[2] or "")[:64])
    if result.get("session_ended") and portal is not None:  # the CA ended it: log in again
        request.session.pop(PORTAL_SESSION, None)
        messages.warning(request, "Your session at the CA has ended: log in again.")
        target = request.get_full_path() if request.method == "GET" else "/ra/"
        return HttpResponseRedirect(f"{LOGIN_PATH}?{urlencode({'next': target})}")
    if "messages" not in result:  # the CA refused to carry it at all (its connector's rules): no portal answer
        logger.warning("RA portal %s: the CA refused to carry the page (status %s)", request.path, result.get("status"))
        return _page(request, "Refused by the CA", "The CA refused to carry this page for this RA.",
                     int(result.get("status") or 502) if str(result.get("status", "")).isdigit() else 502)
    return reply(result)


def portal_session(request: HttpRequest) -> dict[str, str] | None:
    """The operator's RA portal session at the CA (``{"key", "username"}``) kept in this RA's session, or None."""
    session = getattr(request, "session", None)
    value = session.get(PORTAL_SESSION) if session is not None else None
    if isinstance(value, dict) and isinstance(value.get("key"), str) and value["key"]:
        return value
    return None


def forget_on_local_login(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``user_logged_in``: a login to this node's own pages ends the RA portal session the browser held (another
    operator's, on a shared browser), so carried pages do not go on running as them. Its record at the CA is not
    carried a logout: it ends there when unused, and nobody here holds its key any more."""
    session = getattr(request, "session", None)
    if session is not None and session.pop(PORTAL_SESSION, None) is not None:
        logger.info("RA portal session of this browser ended by a local login of %s",
                    getattr(kwargs.get("user"), "username", "?"))


def _carry_credential(request: HttpRequest, identity: dict[str, Any], extra: dict[str, Any],
                      timeout: float | None = None) -> PeerWorkItem | None:
    """Carry a login or logout and wait for the answer. Unlike a page, the credential (a password, a session key)
    is taken out of the RA's work item as soon as the wait ends, also from an item a connector still holds (its
    run, if the lease runs out, is then refused as unreadable), and the answer's body (the new session's key) once
    read here."""
    if timeout is None:
        timeout = float(getattr(settings, "PKI_PEER_REQUEST_TIMEOUT", 30))
    payload = {"method": "POST", "path": LOGIN_PATH, "query": "", "body": "", "messages": [], **extra,
               "identity": identity, "client_address": throttle.client_address(request)}
    item = queue.submit(WorkKind.PORTAL_PAGE, payload, presented_identity(identity), timeout)
    try:
        done = queue.wait_for_answer(item)
    finally:
        scrubbed = {k: v for k, v in payload.items() if k != "identity"}
        PeerWorkItem.objects.filter(pk=item.pk).update(payload=scrubbed)
    if done is not None and isinstance(done.result, dict):
        kept = {k: v for k, v in done.result.items() if k not in ("body", "messages")}
        PeerWorkItem.objects.filter(pk=item.pk).update(result={**kept, "body_forgotten": True})
        if done.result.get("body_forgotten"):
            return None  # answered after the deadline, without its body
    return done


class PortalLoginForm(forms.Form):
    username = forms.CharField(max_length=150, label="User name",
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(max_length=4096, label="Password", strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


def _next_url(request: HttpRequest) -> str:
    asked = request.POST.get("next") or request.GET.get("next") or ""
    if asked.startswith("/ra/") and not asked.startswith(LOGIN_PATH) and url_has_allowed_host_and_scheme(
            asked, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return asked
    return "/ra/"


def portal_login(request: HttpRequest) -> HttpResponse:
    """``/ra/login/`` on an RA node: log in to the RA portal with the user name and password held by the CA."""
    if not is_ra():
        return HttpResponseRedirect(f"{settings.LOGIN_URL}?{urlencode({'next': '/ra/'})}")
    if request.method == "GET" and "state" in request.GET:
        return _oidc_callback(request)
    if request.method == "POST" and "provider" in request.POST:
        return _oidc_start(request)
    if portal_session(request) is not None and request.method == "GET":
        return HttpResponseRedirect(_next_url(request))
    form = PortalLoginForm(request.POST if request.method == "POST" else None)
    status, retry = 200, ""
    if request.method == "POST" and form.is_valid():
        address = throttle.client_address(request)
        try:  # an address the CA keeps refusing is refused here first, unqueued
            throttle.check((throttle.ADDRESS, address))
        except throttle.Throttled as exc:
            form.add_error(None, exc.message)
            status, retry = 429, str(exc.retry_after)
        else:
            identity = {"login": {"username": form.cleaned_data["username"],
                                  "password": form.cleaned_data["password"]}}
            done = _carry_credential(request, identity, {})
            if done is None:
                response = _page(request, "The CA is not answering",
                                 "The CA did not answer in time. Try to log in again in a moment.", 503,
                                 retry=request.get_full_path())
                response["Retry-After"] = RETRY_AFTER
                return response
            answer = done.result or {}
            if answer.get("must_change"):  # a one-time password: the operator chooses their own first
                return _ask_new_password(request, form.cleaned_data["username"])
            session = _login_answer(answer)
            if session is not None:
                _logged_in(request, session)
                logger.info("RA portal login of %s from %s", session["username"], address)
                return HttpResponseRedirect(_next_url(request))
            status, retry = _refused(form, answer, address)
    return _login_page(request, form, status, retry)


def _login_page(request: HttpRequest, form: PortalLoginForm, status: int = 200, retry: str = "",
                error: str = "") -> HttpResponse:
    providers, answered = _oidc_providers(request)
    response = render(request, "peers/portal_login.html", {
        "form": form, "next": _next_url(request), "providers": providers, "providers_answered": answered,
        "error": error,
    }, status=status)
    if retry.isdigit():
        response["Retry-After"] = retry
    return response


def _logged_in(request: HttpRequest, session: dict[str, str]) -> None:
    request.session.cycle_key()  # no session fixation: a new key for the logged-in session
    request.session[PORTAL_SESSION] = session
    rotate_token(request)


def _refused(form, answer: dict[str, Any], address: str) -> tuple[int, str]:
    """A carried login the CA refused: its status and Retry-After for the page, its reason on the form, and a wrong
    password counted against the caller's address here too."""
    status = int(answer.get("status") or 502) if str(answer.get("status", "")).isdigit() else 502
    if status == 401:
        throttle.record_failure(throttle.ADDRESS, address, ip=address)
    form.add_error(None, _refusal_text(answer))
    return status, str((answer.get("headers") or {}).get("Retry-After") or "")[:16]


def _json_body(answer: dict[str, Any]) -> dict[str, Any] | None:
    if answer.get("status") != 200 or not str(answer.get("content_type", "")).startswith("application/json"):
        return None
    try:
        data = json.loads(base64.b64decode(str(answer.get("body", "")), validate=True))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _oidc_providers(request: HttpRequest) -> tuple[list[dict[str, Any]], bool]:
    """The CA's providers for a browser login (``[{"id", "label"}]``) and whether the CA answered: from the shared
    cache, else asked of the CA (a short wait: the password form must not wait long for them)."""
    cached = cache.get(PROVIDERS_CACHE_KEY)
    if isinstance(cached, dict):
        return cached.get("providers") or [], bool(cached.get("answered"))
    wait = min(float(getattr(settings, "PKI_PEER_REQUEST_TIMEOUT", 30)), PROVIDERS_WAIT)
    done = _carry_credential(request, {"oidc": {"action": "providers"}}, {}, timeout=wait)
    data = _json_body(done.result or {}) if done is not None else None
    providers = []
    for entry in (data or {}).get("providers") or []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int) and isinstance(entry.get("label"), str):
            providers.append({"id": entry["id"], "label": entry["label"][:200]})
    answered = data is not None
    cache.set(PROVIDERS_CACHE_KEY, {"providers": providers, "answered": answered},
              PROVIDERS_SECONDS if answered else PROVIDERS_UNANSWERED_SECONDS)
    return providers, answered


def _ca_not_answering(request: HttpRequest) -> HttpResponse:
    response = _page(request, "The CA is not answering",
                     "The CA did not answer in time. Try to log in again in a moment.", 503, retry=LOGIN_PATH)
    response["Retry-After"] = RETRY_AFTER
    return response


def _oidc_start(request: HttpRequest) -> HttpResponse:
    """The operator chose a provider: the CA builds the authorization request; the browser goes to the provider."""
    try:
        provider = int(request.POST.get("provider", ""))
    except ValueError:
        provider = 0
    if provider <= 0:
        return _page(request, "Unknown provider", "Choose one of the listed providers.", 400)
    step = {"action": "start", "provider": provider, "redirect_uri": request.build_absolute_uri(LOGIN_PATH)}
    done = _carry_credential(request, {"oidc": step}, {})
    if done is None:
        return _ca_not_answering(request)
    data = _json_body(done.result or {})
    url, state = (data or {}).get("authorization_url"), (data or {}).get("state")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or not isinstance(state, str):
        return _login_page(request, PortalLoginForm(), 400, error=_refusal_text(done.result or {}))
    request.session[OIDC_PENDING] = {"state": state, "next": _next_url(request)}
    return HttpResponseRedirect(url)


def _oidc_callback(request: HttpRequest) -> HttpResponse:
    """The provider sent the browser back: carry the code and state to the CA, which answers with a session."""
    pending = request.session.pop(OIDC_PENDING, None)
    state = request.GET.get("state", "")
    if not isinstance(pending, dict) or not state or not hmac.compare_digest(str(pending.get("state", "")), state):
        # Login CSRF: a reply for an attempt another browser started (an attacker's own code) logs nobody in here.
        logger.warning("RA portal OIDC reply with a state this browser did not start, from %s",
                       throttle.client_address(request))
        return _login_page(request, PortalLoginForm(), 400, error="This reply of the provider belongs to no login "
                           "started in this browser: log in again.")
    step = {"action": "finish", "state": state, "code": request.GET.get("code", "")[:4096],
            "error": request.GET.get("error", "")[:64]}
    if not queue.storable(step):  # a NUL in the reply (pki.http.nul refuses one in the query string first)
        return _login_page(request, PortalLoginForm(), 400, error="The provider's reply is not readable: log in "
                           "again.")
    done = _carry_credential(request, {"oidc": step}, {})
    if done is None:
        return _ca_not_answering(request)
    session = _login_answer(done.result or {})
    if session is None:
        status = str((done.result or {}).get("status", ""))
        code = int(status) if status.isdigit() and 400 <= int(status) < 600 else 502
        return _login_page(request, PortalLoginForm(), code, error=_refusal_text(done.result or {}))
    _logged_in(request, session)
    logger.info("RA portal OIDC login of %s from %s", session["username"], throttle.client_address(request))
    next_url = pending.get("next")
    return HttpResponseRedirect(next_url if isinstance(next_url, str) and next_url.startswith("/ra/") else "/ra/")


def _login_answer(answer: dict[str, Any]) -> dict[str, str] | None:
    """The session the CA made for a carried login (``{"key", "username"}``), or None when it refused."""
    data = _json_body(answer)
    if data is None or not isinstance(data.get("session"), str) or not data["session"]:
        return None
    return {"key": data["session"][:64], "username": str(data.get("username", ""))[:150]}


def _refusal_text(answer: dict[str, Any]) -> str:
    """The CA's reason for refusing a login, as it wrote it on its refusal page."""
    import html
    import re

    try:
        text = base64.b64decode(str(answer.get("body", "")), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        text = ""
    found = re.search(r"<p>(.*?)</p>", text, re.S)
    return html.unescape(found.group(1))[:300] if found else "The CA refused the login."


def portal_logout(request: HttpRequest, view_func) -> HttpResponse:
    """Log out of the RA portal: the CA deletes its session record, this RA forgets it (also when the CA does not
    answer in time: the record then ends at the CA's idle limit, and nobody here holds its key any more)."""
    refused = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, view_func, (), {})
    if refused is not None:
        return refused
    portal = portal_session(request)
    request.session.flush()
    done = None
    if portal is not None:
        done = _carry_credential(request, {"session": portal["key"]}, {"logout": True})
    if portal is not None and done is None:
        logger.warning("RA portal logout of %s: the CA did not answer; its session ends when idle",
                       portal.get("username"))
        messages.warning(request, "Logged out here. The CA did not answer: your session there ends when unused.")
    else:
        messages.info(request, "Logged out.")
    return HttpResponseRedirect(LOGIN_PATH)


#: This RA's session key naming the user whose login the CA refused for a one-time password: {"username"}.
MUST_CHANGE = "pki_ra_portal_must_change"
PASSWORD_PATH = "/ra/login/password/"


def _ask_new_password(request: HttpRequest, username: str) -> HttpResponse:
    """The CA refused a login for a one-time password: on to the page that carries the login with a new one. Only
    the user name is kept here (no password); the page asks for the one-time password again."""
    request.session[MUST_CHANGE] = {"username": username[:150]}
    return HttpResponseRedirect(f"{PASSWORD_PATH}?{urlencode({'next': _next_url(request)})}")


def portal_password_change(request: HttpRequest) -> HttpResponse:
    """``/ra/login/password/`` on an RA node: a user whose password at the CA is a one-time password (set by an
    administrator) chooses their own and is logged in; an operator logged in with their password changes it. The RA
    carries one login with the current password and the new one; the CA checks the login as any other (throttling,
    lockout, audit), replaces the password by its own rules (its password validators, the USER_PASSWORD_CHANGE
    audit event) and answers with a new session record (the new password ends the user's other sessions there).
    On a CA node: the own account's password page."""
    from pki.forms.users import PasswordChangeForm

    if not is_ra():
        return HttpResponseRedirect("/account/password/")
    pending = request.session.get(MUST_CHANGE) or portal_session(request)
    if not isinstance(pending, dict) or not isinstance(pending.get("username"), str) or not pending["username"]:
        return HttpResponseRedirect(LOGIN_PATH)
    form = PasswordChangeForm(request.POST if request.method == "POST" else None)
    status, retry = (400 if form.is_bound and not form.is_valid() else 200), ""
    if request.method == "POST" and form.is_valid():
        address = throttle.client_address(request)
        try:  # as at the login: an address the CA keeps refusing is refused here first, unqueued
            throttle.check((throttle.ADDRESS, address))
        except throttle.Throttled as exc:
            form.add_error(None, exc.message)
            status, retry = 429, str(exc.retry_after)
        else:
            data = form.cleaned_data
            identity = {"login": {"username": pending["username"], "password": data["old_password"],
                                  "new_password": data["new_password1"]}}
            done = _carry_credential(request, identity, {})
            if done is None:
                response = _page(request, "The CA is not answering",
                                 "The CA did not answer in time: your password may have been changed. Log in "
                                 "again in a moment, with the new password if the old one is refused.", 503,
                                 retry=LOGIN_PATH)
                response["Retry-After"] = RETRY_AFTER
                return response
            answer = done.result or {}
            session = _login_answer(answer)
            if session is not None:
                request.session.pop(MUST_CHANGE, None)
                _logged_in(request, session)
                logger.info("RA portal login of %s from %s with a new password", session["username"], address)
                messages.success(request, "Password changed.")
                return HttpResponseRedirect(_next_url(request))
            status, retry = _refused(form, answer, address)
    response = render(request, "peers/portal_password.html", {
        "form": form, "username": pending["username"], "next": _next_url(request),
        "one_time": MUST_CHANGE in request.session}, status=status)
    if retry.isdigit():
        response["Retry-After"] = retry
    return response


@require_safe
def ca_downloads(request: HttpRequest) -> HttpResponse:
    """``/ra/cas/``: the CA certificates and CRLs (EJBCA RA's "CA Certificates and CRLs"), linked to their public
    download URLs (``/ca/<name>.crt``, ``/crl/<name>.crl``), which anyone may fetch. On an RA node it is the RA's
    own page: the CA certificates and CRLs there are the ones the CA pushed (an RA serves them at those URLs also
    while the CA is unreachable), so nothing is carried; on a CA node, this CA's own."""
    from pki.models import CRL, CertificateAuthority

    from .models import PushedCrl

    cas = list(CertificateAuthority.objects.exclude(certificate_der=None).order_by("name"))
    crls = PushedCrl.objects if is_ra() else CRL.objects
    with_crl = set(crls.filter(ca__in=cas, is_delta=False).values_list("ca_id", flat=True))
    rows = [{"name": ca.name, "subject": ca.subject_dn, "crl": ca.pk in with_crl} for ca in cas]
    return render(request, "peers/portal_cas.html", {"cas": rows})

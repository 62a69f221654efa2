"""Plumbing shared by the admin UI views: access checks, error pages, pagination, service errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cryptotokens.errors import CryptoTokenError

from ..auth.access import Actor, actor_for_request
from ..errors import AuthorizationDenied, PkiError, as_pki_error

logger = logging.getLogger("pki.views")

# What a service may refuse with: the core's typed errors and those of the crypto token layer below it.
SERVICE_ERRORS = (PkiError, CryptoTokenError)
PAGE_SIZE = 50


def requires(*resources: str) -> Callable:
    """Login, then each access rule; a missing rule renders the "not authorized" page (403).

    Refusals that escape the view (a rule checked by a service, a domain error) become a friendly page
    with the error's HTTP status, never a stack trace.
    """

    def decorator(view: Callable) -> Callable:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            who = actor_for_request(request)
            for resource in resources:
                if not who.is_allowed(resource):
                    return not_authorized(request, resource)
            try:
                return view(request, *args, **kwargs)
            except AuthorizationDenied as exc:
                return not_authorized(request, exc.resource)
            except SERVICE_ERRORS as exc:
                return error_page(request, as_pki_error(exc))

        return wrapper

    return decorator


def actor(request: HttpRequest) -> Actor:
    """The caller of this request with the rules of its roles."""
    return actor_for_request(request)


def not_authorized(request: HttpRequest, resource: str) -> HttpResponse:
    """The 403 page naming the access rule that is missing."""
    logger.info("UI access denied to %s for %s", resource, request.user)
    return render(request, "pki/not_authorized.html", {"resource": resource}, status=403)


def error_page(request: HttpRequest, exc: PkiError) -> HttpResponse:
    """A refusal that belongs to no form, shown with the error's own HTTP status."""
    return render(request, "pki/error.html", {"message": exc.message}, status=exc.http_status)


def posted(request: HttpRequest, files: bool = False):
    """The submitted data of a POST (even when empty, so the form is bound), else None."""
    if request.method != "POST":
        return None
    return request.FILES if files else request.POST


def paginate(request: HttpRequest, queryset, per_page: int = PAGE_SIZE) -> Page:
    """The page of ``queryset`` asked for by ``?page=`` (the last one if out of range)."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def safe_filename(name: str) -> str:
    """``name`` for a Content-Disposition header: letters, digits, ``-``, ``_`` and ``.``; the rest become ``_``."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name)


def query_without_page(request: HttpRequest) -> str:
    """The current filters as a query string, so pagination links keep them."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


def form_error(form, exc: Exception, field_map: dict[str, str] | None = None) -> int:
    """Put a service refusal on the form field it names (or on the form) and return the HTTP status to
    answer with. A missing access rule is not a form error: it goes up to the "not authorized" page.

    ``field_map`` renames a service's field to the form's (the service's ``csr`` is the form's ``csr_pem``).
    """
    exc = as_pki_error(exc)
    if isinstance(exc, AuthorizationDenied):
        raise exc
    field = (field_map or {}).get(exc.field or "", exc.field)
    form.add_error(field if field in form.fields else None, exc.message)
    return exc.http_status


def refusal_message(exc: Exception) -> str:
    """A service refusal as a message for the messages area; a missing access rule still goes up to the
    "not authorized" page."""
    exc = as_pki_error(exc)
    if isinstance(exc, AuthorizationDenied):
        raise exc
    return exc.message


def form_status(form, refused: int | None = None) -> int:
    """200 for a fresh or valid form, the service's status for a refusal, else 400 for invalid input."""
    if refused:
        return refused
    return 400 if form.is_bound and form.errors else 200

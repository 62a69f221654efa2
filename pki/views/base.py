"""Plumbing shared by the admin UI views: access checks, error pages, pagination."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ..auth.access import Actor, actor_for_request
from ..errors import AuthorizationDenied, PkiError

logger = logging.getLogger("pki.views")


def requires(*resources: str) -> Callable:
    """Login, then each access rule; a missing rule renders the "not authorized" page (403)."""

    def decorator(view: Callable) -> Callable:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            actor = actor_for_request(request)
            for resource in resources:
                if not actor.is_allowed(resource):
                    return not_authorized(request, resource)
            try:
                return view(request, *args, **kwargs)
            except AuthorizationDenied as exc:
                return not_authorized(request, exc.resource)
            except PkiError as exc:
                return error_page(request, exc)

        return wrapper

    return decorator


def actor(request: HttpRequest) -> Actor:
    return actor_for_request(request)


def not_authorized(request: HttpRequest, resource: str) -> HttpResponse:
    logger.info("UI access denied to %s for %s", resource, request.user)
    return render(request, "pki/not_authorized.html", {"resource": resource}, status=403)


def error_page(request: HttpRequest, exc: PkiError) -> HttpResponse:
    return render(request, "pki/error.html", {"message": exc.message}, status=exc.http_status)


def posted(request: HttpRequest, files: bool = False):
    """The submitted data of a POST (even when empty, so the form is bound), else None."""
    if request.method != "POST":
        return None
    return request.FILES if files else request.POST


def paginate(request: HttpRequest, queryset, per_page: int = 50):
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def form_error(form, exc: PkiError) -> None:
    """Put a service refusal on the form field it names (or on the form); a missing access rule is not a
    form error: it goes up to the "not authorized" page."""
    if isinstance(exc, AuthorizationDenied):
        raise exc
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)

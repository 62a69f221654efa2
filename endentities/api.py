"""EJBCA's REST end entity resource (``/v1/endentity``) and its enrollment endpoints (``/v1/certificate/
pkcs10enroll``, ``/v1/certificate/enrollkeystore``): thin views over ``endentities.services``.

Refusals are ``{"error_code": <status>, "error_message": ...}`` (``pki.api.errors``); a request the services
refuse changes nothing.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pki.api.lookups import parse_date, resolve_ca, resolve_profile, status_payload
from pki.api.serializers import StatusSerializer, with_errors
from pki.auth.access import Actor, actor_for_request
from pki.errors import NotFoundError, ValidationError

from .choices import EndEntityStatus, TokenType
from .models import EndEntity, EndEntityProfile
from .serializers import (
    AddEndEntitySerializer,
    CertificateResponseSerializer,
    EnrollKeystoreSerializer,
    Pkcs10EnrollSerializer,
    RevokeEndEntitySerializer,
    SearchEndEntitiesResponseSerializer,
    SearchEndEntitiesSerializer,
    SetStatusSerializer,
    build_certificate_response,
    build_end_entity,
    build_keystore_response,
)
from .services import (
    EndEntityExists,
    EndEntityQuery,
    add_end_entity,
    delete_end_entity,
    edit_end_entity,
    revoke_end_entity,
    search_end_entities,
    set_password,
    set_status,
)
from .services.approvals import gate_status
from .services.common import RA_RULES
from .services.pkcs10 import enroll_keystore_rest, enroll_pkcs10

TAGS = ["v1/endentity"]
# Enrolling through REST issues a certificate: the caller needs this rule besides the end entity's own checks.
CREATE_CERTIFICATE = "/ca_functionality/create_certificate"
CERT_TAGS = ["v1/certificate"]
_NAME = OpenApiParameter("endentity_name", str, OpenApiParameter.PATH, description="Username of the end entity")


def _read(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _extension_data(items: list[dict]) -> str:
    """EJBCA's extension_data (name/value pairs) as the properties text the profile validates."""
    lines = []
    for item in items or []:
        name = item["name"].strip()
        if name and name[0].isdigit() and not name.endswith(".value"):
            name += ".value"  # a bare OID names the value of that custom extension
        lines.append(f"{name}={item['value']}")
    return "\n".join(lines)


class EndEntityStatusView(APIView):
    @extend_schema(tags=TAGS, operation_id="endentity_status", summary="Status of the end entity resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(status_payload())


# Fields of EJBCA's AddEndEntityRestRequest this installation has no use for: refused by name when set, never
# silently dropped.
_REFUSED_FIELDS = {
    "account_binding_id": "there is no ACME external account binding here",
    "custom_data": "EJBCA's end entity custom data has no use here",
    "card_number": "smart card numbers are not kept here",
    "certificate_serial_number": "certificate serial numbers are always random here (no custom serial numbers)",
}


def _refuse_unused(body: dict) -> None:
    for name, why in _REFUSED_FIELDS.items():
        if body.get(name):
            raise ValidationError(f"{name} is not supported: {why}.", field=name)


def _end_entity_input(body: dict, *, username: str):
    """EJBCA's AddEndEntityRestRequest as the services' input (every field used, or refused above)."""
    from .validation import EndEntityInput

    _refuse_unused(body)
    return EndEntityInput(
        username=username, password=body.get("password") or None,
        subject_dn=body.get("subject_dn", ""), subject_alt_name=body.get("subject_alt_name", ""),
        email=body.get("email", ""), ca=body.get("ca_name") or None,
        certificate_profile=body.get("certificate_profile_name") or None, token_type=body.get("token"),
        custom_extension_data=_extension_data(body.get("extension_data", [])),
        key_recoverable=True if body.get("key_recoverable") else None,
        validity_start=body.get("start_time") or "", validity_end=body.get("end_time") or "",
        send_notification=body.get("send_notification"),
    )


def _named(exc: ValidationError) -> ValidationError:
    """A profile refusal of the validity times named by EJBCA's field names (start_time, end_time)."""
    rest = {"validity_start": "start_time", "validity_end": "end_time"}.get(exc.field or "")
    return ValidationError(f"{rest}: {exc.message}", field=rest) if rest else exc


class AddEndEntityView(APIView):
    """``POST /v1/endentity``: 200 and no body; a taken username is 400, as EJBCA answers."""

    @extend_schema(tags=TAGS, operation_id="endentity_add", summary="Add a new end entity",
                   request=AddEndEntitySerializer, responses=with_errors({200: None}, 400, 401, 403, 404))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(RA_RULES["create"])  # the rule before the body: a caller without it learns nothing
        body = _read(AddEndEntitySerializer, request)
        data = _end_entity_input(body, username=body.get("username", ""))
        try:
            add_end_entity(actor, data, profile=body.get("end_entity_profile_name") or None,
                           status=body.get("status"))
        except EndEntityExists as exc:  # EJBCA's EndEntityExistsException maps to 400
            raise ValidationError(exc.message, field="username") from None
        except ValidationError as exc:
            raise _named(exc) from None
        return Response(status=http.HTTP_200_OK)


class EditEndEntityView(APIView):
    """``POST /v1/endentity/edit`` (EJBCA's AddEndEntityRestRequest): change an existing end entity; 200, no body.

    Every field is set as given (an empty one clears it, as EJBCA's edit does); a password left out keeps the
    current one; ``status`` set changes the status too (NEW resets the request counter)."""

    @extend_schema(tags=TAGS, operation_id="endentity_edit", summary="Edit an existing end entity",
                   request=AddEndEntitySerializer, responses=with_errors({200: None}, 400, 401, 403, 404))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(RA_RULES["edit"])
        body = _read(AddEndEntitySerializer, request)
        username = (body.get("username") or "").strip()
        if not username:
            raise ValidationError("username is required: the end entity to edit.", field="username")
        data = _end_entity_input(body, username=username)
        if EndEntity.objects.filter(username=username).values_list("ca_id", flat=True).first() is None:
            raise NotFoundError(f"Could not find end entity for the username '{username}'.")
        try:
            edit_end_entity(actor, username, data, profile=body.get("end_entity_profile_name") or None,
                            status=body.get("status"))
        except ValidationError as exc:
            raise _named(exc) from None
        return Response(status=http.HTTP_200_OK)


class SetStatusView(APIView):
    """``POST /v1/endentity/{name}/setstatus``: status, and optionally the password and the token type."""

    @extend_schema(tags=TAGS, operation_id="endentity_setstatus", summary="Set an end entity's status",
                   parameters=[_NAME], request=SetStatusSerializer,
                   responses=with_errors({200: None}, 400, 401, 403, 404))
    def post(self, request: Request, endentity_name: str) -> Response:
        from .validation import EndEntityInput

        actor = actor_for_request(request)
        actor.require(RA_RULES["edit"])
        body = _read(SetStatusSerializer, request)
        token = body.get("token")
        # Under "Add/Edit End Entity" approval the change waits as one request (202), before the transaction.
        gate_status(actor, endentity_name, body["status"], body.get("password") or None, interface="rest")
        with transaction.atomic():  # token, password and status change together or not at all
            ee = _entity(endentity_name)
            if token and TokenType[token] != ee.token_type:
                edit_end_entity(actor, endentity_name, EndEntityInput(
                    subject_dn=ee.subject_dn, subject_alt_name=ee.subject_alt_name, email=ee.email, ca=ee.ca,
                    certificate_profile=ee.certificate_profile, token_type=token))
            if body.get("password"):
                set_password(actor, endentity_name, body["password"])
            set_status(actor, endentity_name, body["status"])
        return Response(status=http.HTTP_200_OK)


def _entity(username: str) -> EndEntity:
    ee = EndEntity.objects.filter(username=username).first()
    if ee is None:
        raise NotFoundError(f"Could not find end entity for the username '{username}'.")
    return ee


class RevokeEndEntityView(APIView):
    """``PUT /v1/endentity/{name}/revoke``: every certificate, with ``reason_code``; ``delete`` removes it too."""

    @extend_schema(tags=TAGS, operation_id="endentity_revoke", summary="Revoke all certificates of an end entity",
                   parameters=[_NAME], request=RevokeEndEntitySerializer,
                   responses=with_errors({200: None}, 400, 401, 403, 404, 409))
    def put(self, request: Request, endentity_name: str) -> Response:
        actor = actor_for_request(request)
        actor.require(RA_RULES["revoke"])
        body = _read(RevokeEndEntitySerializer, request)
        if body["reason_code"] in (7, 8):
            raise ValidationError(f"Invalid revocation reason code {body['reason_code']}.", field="reason_code")
        if body["delete"]:
            delete_end_entity(actor, endentity_name, revoke_reason=body["reason_code"])
        else:
            revoke_end_entity(actor, endentity_name, body["reason_code"])
        return Response(status=http.HTTP_200_OK)


class DeleteEndEntityView(APIView):
    """``DELETE /v1/endentity/{name}``: 200 also when there is no such end entity (as EJBCA answers)."""

    @extend_schema(tags=TAGS, operation_id="endentity_delete", summary="Delete an end entity",
                   parameters=[_NAME], responses=with_errors({200: None}, 401, 403))
    def delete(self, request: Request, endentity_name: str) -> Response:
        actor = actor_for_request(request)
        actor.require(RA_RULES["delete"])
        try:
            delete_end_entity(actor, endentity_name)
        except NotFoundError:
            pass
        return Response(status=http.HTTP_200_OK)


def _criteria_query(actor: Actor, criteria: list[dict]) -> EndEntityQuery:
    """EJBCA's end entity search criteria: values of one property OR-ed, properties AND-ed; names the caller
    may not use are as unknown as names that do not exist."""
    query = EndEntityQuery()
    for c in criteria:
        prop, value, op = c["property"], c["value"], c["operation"]
        if prop in {"MODIFIED_BEFORE", "MODIFIED_AFTER"}:
            when = parse_date(value, "criteria")
            setattr(query, "modified_before" if prop == "MODIFIED_BEFORE" else "modified_after", when)
            continue
        if op not in {"EQUAL", "LIKE"}:
            raise ValidationError(f"Invalid search criteria content: operation {op} does not apply to {prop}.",
                                  field="criteria")
        if prop == "QUERY":
            if op == "LIKE":
                query.text = value
            else:
                query.exact = value
        elif prop == "STATUS":
            try:
                query.statuses.append(EndEntityStatus.parse(value))
            except ValueError:
                raise ValidationError(f"Invalid search criteria content, unknown status '{value}'.",
                                      field="criteria") from None
        elif prop == "END_ENTITY_PROFILE":
            profile = EndEntityProfile.objects.filter(name=value).first()
            if profile is None or not actor.is_allowed(f"/endentityprofilesrules/{profile.pk}/view_end_entity"):
                raise ValidationError("Invalid search criteria content, unknown end entity profile.", field="criteria")
            query.profiles.append(profile)
        elif prop == "CERTIFICATE_PROFILE":
            try:
                query.certificate_profiles.append(resolve_profile(value))
            except NotFoundError:
                raise ValidationError("Invalid search criteria content, unknown certificate profile.",
                                      field="criteria") from None
        elif prop == "CA":
            try:
                ca = resolve_ca(value)
            except NotFoundError:
                ca = None
            if ca is None or not actor.is_allowed(f"/ca/{ca.pk}"):
                raise ValidationError("Invalid search criteria content, unknown CA.", field="criteria")
            query.cas.append(ca)
    return query


class SearchEndEntitiesView(APIView):
    """``POST /v1/endentity/search``: at most ``max_number_of_results`` end entities, and ``more_results``."""

    @extend_schema(tags=TAGS, operation_id="endentity_search", summary="Search end entities",
                   request=SearchEndEntitiesSerializer,
                   responses=with_errors({200: SearchEndEntitiesResponseSerializer}, 400, 401, 403))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(RA_RULES["view"])
        body = _read(SearchEndEntitiesSerializer, request)
        limit = body["max_number_of_results"]
        offset = max(body["current_page"] - 1, 0) * limit  # 1-based, as EJBCA's
        found = list(search_end_entities(actor, _criteria_query(actor, body["criteria"]))[offset:offset + limit + 1])
        return Response({"end_entities": [build_end_entity(ee) for ee in found[:limit]],
                         "more_results": len(found) > limit})


class Pkcs10EnrollView(APIView):
    """``POST /v1/certificate/pkcs10enroll``: 201 with the certificate (and its chain when asked)."""

    @extend_schema(tags=CERT_TAGS, operation_id="certificate_pkcs10enroll",
                   summary="Enroll a PKCS#10 request (adds the end entity when it does not exist)",
                   request=Pkcs10EnrollSerializer,
                   responses=with_errors({201: CertificateResponseSerializer}, 400, 401, 403, 404, 409, 503))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(CREATE_CERTIFICATE)
        body = _read(Pkcs10EnrollSerializer, request)
        if body.get("account_binding_id"):
            raise ValidationError(f"account_binding_id is not supported: {_REFUSED_FIELDS['account_binding_id']}.",
                                  field="account_binding_id")
        csr = body["certificate_request"].strip()
        if "-----BEGIN" not in csr:  # EJBCA also takes the base64 DER without PEM armour
            csr = f"-----BEGIN CERTIFICATE REQUEST-----\n{csr}\n-----END CERTIFICATE REQUEST-----\n"
        issued = enroll_pkcs10(
            actor, csr, username=body["username"], password=body["password"],
            ca=body.get("certificate_authority_name") or None,
            certificate_profile=body.get("certificate_profile_name") or None,
            end_entity_profile=body.get("end_entity_profile_name") or None, email=body.get("email", ""),
        )
        row = issued.row
        ee = EndEntity.objects.select_related("end_entity_profile").filter(username=row.username).first()
        chain = row.ca.chain()
        return Response(build_certificate_response(row, issued.certificate, chain, body["include_chain"],
                                                   body["response_format"],
                                                   ee.end_entity_profile.name if ee else ""),
                        status=http.HTTP_201_CREATED)


class EnrollKeystoreView(APIView):
    """``POST /v1/certificate/enrollkeystore``: a server-generated key in the end entity's token format."""

    @extend_schema(tags=CERT_TAGS, operation_id="certificate_enrollkeystore",
                   summary="Enroll with a key generated on the server; the keystore comes back base64",
                   request=EnrollKeystoreSerializer,
                   responses=with_errors({201: CertificateResponseSerializer}, 400, 401, 403, 404, 409, 503))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(CREATE_CERTIFICATE)
        body = _read(EnrollKeystoreSerializer, request)
        result = enroll_keystore_rest(actor, body["username"], body["password"], key_alg=body["key_alg"],
                                      key_spec=body["key_spec"])
        profile = (EndEntity.objects.filter(username=body["username"])
                   .values_list("end_entity_profile__name", flat=True).first() or "")
        return Response(build_keystore_response(result.keystore, result.response_format, result.issued.row,
                                                result.chain, profile),
                        status=http.HTTP_201_CREATED)

"""Roles over REST (EJBCA's REST API has none; these paths are this project's, under ``/v1/roles``).

Thin views over ``pki.services.roles``: viewing needs ``/system_functionality/view_administrator_privileges``,
every change ``/system_functionality/edit_administrator_privileges`` plus the role-edit rule of
``pki.auth.access`` (a caller changes only roles that allow nothing it is denied, before and after the change),
and is audited by the service. A role is named by its name (or its id when no role has that name).

- ``GET v1/roles``, ``POST v1/roles`` (``{"role_name", "description"}``)
- ``GET|DELETE v1/roles/{role}``
- ``POST v1/roles/{role}/members``, ``DELETE v1/roles/{role}/members/{member_id}``
- ``GET|PUT v1/roles/{role}/rules`` (PUT: ``{"rules": {"/path": "ALLOW" | "DENY" | "INHERIT"}}`` changes the
  named rules; INHERIT removes a rule, as EJBCA's ``roles changerule``)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import audit
from ..auth.access import EDIT_RULE, Actor, actor_for_request
from ..choices import MemberMatch
from ..errors import AuthorizationDenied, NotFoundError, ValidationError
from ..ids import is_db_id
from ..models import Role, RoleMember
from ..services import roles as role_service
from .lookups import authorized_ca
from .serializers import with_errors

TAGS = ["v1/roles"]
VIEW_RULE = role_service.VIEW_RULE
# EJBCA's CLI names of the certificate matches are accepted too.
MATCH_ALIASES = {"WITH_SERIALNUMBER": MemberMatch.CERTIFICATE_SERIAL, "WITH_COMMONNAME": MemberMatch.CERTIFICATE_CN,
                 "CERTIFICATE_SERIAL_NUMBER": MemberMatch.CERTIFICATE_SERIAL}
STATES = {"ALLOW": True, "DENY": False, "INHERIT": None}
_ROLE = OpenApiParameter("role_name", str, OpenApiParameter.PATH, description="The role's name (or id)")


class RoleSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    member_count = serializers.IntegerField()
    rule_count = serializers.IntegerField()


class RoleListSerializer(serializers.Serializer):
    roles = RoleSummarySerializer(many=True)


class MemberSerializer(serializers.Serializer):
    """A role member; which fields count depends on ``match_type``."""

    id = serializers.IntegerField(read_only=True)
    match_type = serializers.CharField(help_text="LOCAL_USER, OAUTH_CLAIM, CERTIFICATE_SERIAL, CERTIFICATE_CN "
                                                 "(or EJBCA's WITH_SERIALNUMBER, WITH_COMMONNAME)")
    match_value = serializers.CharField(max_length=1024)
    provider = serializers.CharField(required=False, allow_blank=True, default="",
                                     help_text="OAUTH_CLAIM: the trusted provider's label")
    claim = serializers.CharField(required=False, allow_blank=True, default="", help_text="OAUTH_CLAIM: the claim")
    issuer_ca = serializers.CharField(required=False, allow_blank=True, default="",
                                      help_text="Certificate members: the issuing CA's name, id or DN")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)


class RuleSerializer(serializers.Serializer):
    resource = serializers.CharField()
    state = serializers.CharField(help_text="ALLOW or DENY")


class RoleDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    members = MemberSerializer(many=True)
    access_rules = RuleSerializer(many=True)


class CreateRoleSerializer(serializers.Serializer):
    role_name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=4096)


class RulesRequestSerializer(serializers.Serializer):
    rules = serializers.DictField(child=serializers.CharField(), allow_empty=False,
                                  help_text='{"/ca_functionality/view_certificate": "ALLOW" | "DENY" | "INHERIT"}')


class RuleChangesSerializer(serializers.Serializer):
    added = serializers.DictField(child=serializers.CharField())
    removed = serializers.DictField(child=serializers.CharField())
    changed = serializers.DictField(child=serializers.CharField())


@contextmanager
def _refusals_audited(event_type: str, actor: Actor, role: str) -> Iterator[None]:
    """A role change refused for want of a right (an escalation attempt, or a caller without the rule) is written
    to the audit log as a failure of ``event_type``, then answered 403."""
    try:
        yield
    except AuthorizationDenied as exc:
        audit.record_failure(event_type, actor.name, exc.message, object_type="role", object_id=role,
                             details={"interface": "rest"})
        raise


def _read(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _role(actor, ref: str) -> Role:
    actor.require(VIEW_RULE)
    role = Role.objects.filter(name=ref).first()
    if role is None and is_db_id(ref):
        role = Role.objects.filter(pk=int(ref)).first()
    if role is None:
        raise NotFoundError(f"Role '{ref}' does not exist.")
    return role


def _member(m: RoleMember) -> dict:
    return {"id": m.pk, "match_type": m.match_type, "match_value": m.match_value,
            "provider": m.provider.label if m.provider_id else "", "claim": m.claim,
            "issuer_ca": m.issuer_ca.name if m.issuer_ca_id else "", "description": m.description}


def _rules(role: Role) -> list[dict]:
    return [{"resource": r, "state": "ALLOW" if a else "DENY"}
            for r, a in role.rules.order_by("resource").values_list("resource", "allowed")]


def _detail(role: Role) -> dict:
    members = role.members.select_related("provider", "issuer_ca").order_by("pk")
    return {"id": role.pk, "name": role.name, "description": role.description,
            "members": [_member(m) for m in members], "access_rules": _rules(role)}


class RoleListView(APIView):
    @extend_schema(tags=TAGS, operation_id="roles_list", summary="List roles",
                   responses=with_errors({200: RoleListSerializer}, 401, 403))
    def get(self, request: Request) -> Response:
        roles = role_service.list_roles(actor_for_request(request)).order_by("name")
        return Response({"roles": [{"id": r.pk, "name": r.name, "description": r.description,
                                    "member_count": r.member_count, "rule_count": r.rule_count} for r in roles]})

    @extend_schema(tags=TAGS, operation_id="roles_add", summary="Add a role (no members, no rules)",
                   request=CreateRoleSerializer, responses=with_errors({201: RoleDetailSerializer}, 400, 401, 403, 409))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        with _refusals_audited("ROLE_CREATION", actor, ""):
            actor.require(EDIT_RULE)  # the rule before the body
            body = _read(CreateRoleSerializer, request)
            role = role_service.create_role(actor, body["role_name"], body["description"])
        return Response(_detail(role), status=http.HTTP_201_CREATED)


class RoleDetailView(APIView):
    @extend_schema(tags=TAGS, operation_id="roles_get", summary="A role with its members and access rules",
                   parameters=[_ROLE], responses=with_errors({200: RoleDetailSerializer}, 401, 403, 404))
    def get(self, request: Request, role_name: str) -> Response:
        return Response(_detail(_role(actor_for_request(request), role_name)))

    @extend_schema(tags=TAGS, operation_id="roles_remove", summary="Remove a role",
                   parameters=[_ROLE], responses=with_errors({200: None}, 401, 403, 404, 409))
    def delete(self, request: Request, role_name: str) -> Response:
        """Refused (409) when it would leave no super administrator with a member."""
        actor = actor_for_request(request)
        with _refusals_audited("ROLE_DELETION", actor, role_name):
            actor.require(EDIT_RULE)
            role_service.delete_role(actor, _role(actor, role_name))
        return Response(status=http.HTTP_200_OK)


class RoleMembersView(APIView):
    @extend_schema(tags=TAGS, operation_id="roles_add_member", summary="Add a member to a role",
                   parameters=[_ROLE], request=MemberSerializer,
                   responses=with_errors({201: MemberSerializer}, 400, 401, 403, 404, 409))
    def post(self, request: Request, role_name: str) -> Response:
        actor = actor_for_request(request)
        with _refusals_audited("ROLE_ACCESS_USER_ADDITION", actor, role_name):
            actor.require(EDIT_RULE)
            role = _role(actor, role_name)
            body = _read(MemberSerializer, request)
            match = body["match_type"].strip().upper()
            match = MATCH_ALIASES.get(match, match)
            if match not in MemberMatch.values:
                raise ValidationError(f"Unknown match_type '{body['match_type']}'. Use one of "
                                      f"{', '.join([*MemberMatch.values, *MATCH_ALIASES])}.", field="match_type")
            issuer = authorized_ca(actor, body["issuer_ca"]) if body["issuer_ca"].strip() else None
            spec = role_service.MemberSpec(match_type=match, match_value=body["match_value"], provider=body["provider"],
                                           claim=body["claim"], issuer_ca=issuer, description=body["description"])
            member = role_service.add_member(actor, role, spec)
            member = RoleMember.objects.select_related("provider", "issuer_ca").get(pk=member.pk)
        return Response({**_member(member), "warnings": role_service.member_warnings(spec)},
                        status=http.HTTP_201_CREATED)


class RoleMemberView(APIView):
    @extend_schema(tags=TAGS, operation_id="roles_remove_member", summary="Remove a member from a role",
                   parameters=[_ROLE, OpenApiParameter("member_id", int, OpenApiParameter.PATH)],
                   responses=with_errors({200: None}, 401, 403, 404, 409))
    def delete(self, request: Request, role_name: str, member_id: int) -> Response:
        actor = actor_for_request(request)
        with _refusals_audited("ROLE_ACCESS_USER_DELETION", actor, role_name):
            actor.require(EDIT_RULE)
            role_service.remove_member(actor, _role(actor, role_name), member_id)
        return Response(status=http.HTTP_200_OK)


class RoleRulesView(APIView):
    @extend_schema(tags=TAGS, operation_id="roles_list_rules", summary="A role's access rules",
                   parameters=[_ROLE], responses=with_errors({200: RuleSerializer(many=True)}, 401, 403, 404))
    def get(self, request: Request, role_name: str) -> Response:
        return Response(_rules(_role(actor_for_request(request), role_name)))

    @extend_schema(tags=TAGS, operation_id="roles_change_rules",
                   summary="Change access rules: ALLOW, DENY, or INHERIT (remove)", parameters=[_ROLE],
                   request=RulesRequestSerializer,
                   responses=with_errors({200: RuleChangesSerializer}, 400, 401, 403, 404, 409))
    def put(self, request: Request, role_name: str) -> Response:
        """The rules not named stay as they are; the whole new rule set is checked and saved in one transaction."""
        actor = actor_for_request(request)
        with _refusals_audited("ROLE_ACCESS_RULE_CHANGE", actor, role_name):
            actor.require(EDIT_RULE)
            role = _role(actor, role_name)
            body = _read(RulesRequestSerializer, request)
            with transaction.atomic():  # read, merge and save under the role lock: no lost update between callers
                Role.objects.select_for_update().filter(pk=role.pk).first()
                changes = _merge_rules(actor, role, body["rules"])
        return Response({"added": changes.added, "removed": changes.removed, "changed": changes.changed})


def _merge_rules(actor, role: Role, wanted: dict[str, str]) -> role_service.RuleChanges:
    """The role's rules with ``wanted`` applied (INHERIT removes), saved through the role service."""
    rules = dict(role.rules.values_list("resource", "allowed"))
    for path, state in wanted.items():
        key = state.strip().upper()
        if key not in STATES:
            raise ValidationError(f"Rule state '{state}' for {path[:80]} must be ALLOW, DENY or INHERIT.",
                                  field="rules")
        path = role_service.validate_rule_path(path)
        if STATES[key] is None:
            rules.pop(path, None)
        else:
            rules[path] = STATES[key]
    return role_service.set_rules(actor, role, rules)

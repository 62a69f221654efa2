"""EJBCA's v2 end entity resource (``/v2/endentity``): status, the caller's end entity profiles, one profile's
content, and the sorted, page-wise end entity search. Also what the core's v2 certificate search needs to know
about end entity profiles (:class:`ProfileLink`, registered in ``EndEntitiesConfig.ready``).

Rules as in v1: the search needs ``/ra_functionality/view_end_entity`` and finds only end entities whose CA and
profile the caller may view (``EndEntity.objects.restrict``); a profile the caller may not use answers as a
missing one.
"""

from __future__ import annotations

from django.db.models import BigIntegerField, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pki.api.serializers import StatusSerializer, with_errors
from pki.api.v2.certificates import v2_status
from pki.auth.access import Actor, actor_for_request
from pki.errors import NotFoundError, ValidationError
from pki.models import CertificateAuthority, CertificateProfile

from .api import _criteria_query
from .models import EndEntity, EndEntityProfile
from .serializers import SearchCriterionSerializer, SearchEndEntitiesResponseSerializer, build_end_entity
from .services import search_end_entities
from .services.common import RA_RULES

TAGS = ["v2/endentity"]
VIEW_PROFILES = "/ca_functionality/view_end_entity_profiles"
MAX_RESULTS = 500
MAX_OFFSET = 100_000
# EJBCA's sort properties; profile, certificate profile and CA sort by their database id, as EJBCA's do.
SORT_FIELDS = {
    "USERNAME": "username",
    "SUBJECT_DN": "subject_dn",
    "SUBJECT_ALT_NAME": "subject_alt_name",
    "END_ENTITY_PROFILE": "end_entity_profile_id",
    "CERTIFICATE_PROFILE": "certificate_profile_id",
    "CA": "ca_id",
    "STATUS": "status",
    "UPDATE_TIME": "updated_at",
    "CREATED_DATE": "created_at",
}


def _may_use_profile(actor: Actor, pk: int, action: str) -> bool:
    return actor.is_allowed(f"/endentityprofilesrules/{pk}/{action}")


class ProfileLink:
    """The end entity profile of certificates, for ``pki.api.v2.search`` (the core cannot import this app)."""

    def annotate(self, qs: QuerySet) -> QuerySet:
        """The profile recorded at issuance (EJBCA's CertificateData.endEntityProfileId); for a certificate issued
        before profiles were recorded, the profile its end entity has now."""
        owner = EndEntity.objects.filter(username=OuterRef("username")).values("end_entity_profile_id")[:1]
        return qs.annotate(ee_profile_id=Coalesce(F("end_entity_profile_id"), Subquery(owner),
                                                  output_field=BigIntegerField()))

    def viewable_profile_ids(self, actor: Actor) -> list[int] | None:
        if actor.system:
            return None
        return [pk for pk in EndEntityProfile.objects.values_list("pk", flat=True)
                if _may_use_profile(actor, pk, "view_end_entity")]

    def profile_id(self, actor: Actor, name: str) -> int | None:
        pk = EndEntityProfile.objects.filter(name=name).values_list("pk", flat=True).first()
        if pk is None or not (actor.system or _may_use_profile(actor, pk, "view_end_entity")):
            return None
        return pk


# --- shapes ------------------------------------------------------------------------------------------------


class AuthorizedProfileSerializer(serializers.Serializer):
    name = serializers.CharField()
    id = serializers.IntegerField()
    description = serializers.CharField()


class AuthorizedProfilesSerializer(serializers.Serializer):
    """EJBCA's AuthorizedEEPsRestResponse (``end_entitie_profiles`` is EJBCA's spelling)."""

    end_entitie_profiles = AuthorizedProfileSerializer(many=True)


class EndEntityProfileContentSerializer(serializers.Serializer):
    """EJBCA's EndEntityProfileResponse."""

    end_entity_profile_name = serializers.CharField()
    subject_distinguished_name_fields = serializers.ListField(child=serializers.CharField())
    subject_alternative_name_fields = serializers.ListField(child=serializers.CharField())
    available_certificate_profiles = serializers.ListField(child=serializers.CharField())
    available_cas = serializers.ListField(child=serializers.CharField())


class SortOperationSerializer(serializers.Serializer):
    property = serializers.ChoiceField(choices=list(SORT_FIELDS))
    operation = serializers.ChoiceField(choices=["ASC", "DESC"], default="ASC")


class SearchEndEntitiesV2Serializer(serializers.Serializer):
    """EJBCA's SearchEndEntitiesRestRequestV2."""

    max_number_of_results = serializers.IntegerField(min_value=1, max_value=MAX_RESULTS)
    current_page = serializers.IntegerField(required=False, min_value=0, default=1, help_text="1-based")
    criteria = SearchCriterionSerializer(many=True, allow_empty=False, max_length=100)
    sort_operation = SortOperationSerializer(required=False, allow_null=True)


# --- views ---------------------------------------------------------------------------------------------------


class EndEntityStatusV2View(APIView):
    @extend_schema(tags=TAGS, operation_id="endentity_v2_status", summary="Status of the v2 end entity resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(v2_status())


class AuthorizedProfilesView(APIView):
    """``GET /v2/endentity/profiles/authorized``: the profiles the caller may create end entities with."""

    @extend_schema(tags=TAGS, operation_id="endentity_v2_profiles_authorized",
                   summary="End entity profiles the caller may add end entities with",
                   responses=with_errors({200: AuthorizedProfilesSerializer}, 401))
    def get(self, request: Request) -> Response:
        actor = actor_for_request(request)
        rows = EndEntityProfile.objects.order_by("name").values_list("pk", "name", "description")
        return Response({"end_entitie_profiles": [
            {"name": name, "id": pk, "description": description} for pk, name, description in rows
            if actor.system or _may_use_profile(actor, pk, "create_end_entity")]})


class EndEntityProfileView(APIView):
    """``GET /v2/endentity/profile/{endentity_profile_name}``."""

    @extend_schema(tags=TAGS, operation_id="endentity_v2_profile", summary="The content of an end entity profile",
                   parameters=[OpenApiParameter("endentity_profile_name", str, OpenApiParameter.PATH)],
                   responses=with_errors({200: EndEntityProfileContentSerializer}, 401, 404))
    def get(self, request: Request, endentity_profile_name: str) -> Response:
        """Readable by a caller that may view end entity profiles or use this one; to anyone else the profile
        does not exist (404, as for a missing one)."""
        actor = actor_for_request(request)
        profile = EndEntityProfile.objects.filter(name=endentity_profile_name).first()
        if profile is None or not (actor.is_allowed(VIEW_PROFILES) or any(
                _may_use_profile(actor, profile.pk, a) for a in ("view_end_entity", "create_end_entity"))):
            raise NotFoundError(f"End entity profile '{endentity_profile_name}' does not exist.")
        cps = profile.available_certificate_profiles.order_by("name").values_list("name", flat=True)
        cas = CertificateAuthority.objects.local() if profile.any_ca else profile.available_cas.all()
        return Response({
            "end_entity_profile_name": profile.name,
            "subject_distinguished_name_fields": [f["type"] for f in profile.subject_dn_fields or []],
            "subject_alternative_name_fields": [f["type"] for f in profile.subject_alt_name_fields or []],
            "available_certificate_profiles": list(cps) or list(
                CertificateProfile.objects.filter(profile_type="ENDENTITY").order_by("name")
                .values_list("name", flat=True)),
            "available_cas": [name for pk, name in cas.order_by("name").values_list("pk", "name")
                              if actor.is_allowed(f"/ca/{pk}")],
        })


class SearchEndEntitiesV2View(APIView):
    """``POST /v2/endentity/search``: EJBCA's v1 criteria with a sort order and 1-based pages."""

    @extend_schema(tags=TAGS, operation_id="endentity_v2_search", summary="Search end entities, sorted",
                   request=SearchEndEntitiesV2Serializer,
                   responses=with_errors({200: SearchEndEntitiesResponseSerializer}, 400, 401, 403))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(RA_RULES["view"])  # the rule before the body
        serializer = SearchEndEntitiesV2Serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        body = serializer.validated_data
        limit = body["max_number_of_results"]
        offset = max(body["current_page"] - 1, 0) * limit
        if offset > MAX_OFFSET:
            raise ValidationError(f"Pages start at most {MAX_OFFSET} results deep: narrow the criteria.",
                                  field="current_page")
        qs = search_end_entities(actor, _criteria_query(actor, body["criteria"]))
        sort = body.get("sort_operation")
        if sort:
            field = F(SORT_FIELDS[sort["property"]])
            qs = qs.order_by(field.desc(nulls_last=True) if sort["operation"] == "DESC" else field.asc(),
                             "username")
        found = list(qs[offset:offset + limit + 1])
        return Response({"end_entities": [build_end_entity(ee) for ee in found[:limit]],
                         "more_results": len(found) > limit})

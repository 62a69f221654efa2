"""EJBCA's configdump resource, ``/v1/configdump``: the seven operations (status; export as JSON, of one type,
of one item, as a zip of YAML files; import JSON; import a zip). Thin views over
:mod:`pki.services.configdump`, which checks ``/administrator`` and each item type's rules, audits, and imports
all-or-nothing. Import answers EJBCA's ConfigdumpResults (``success``, ``errors``, ``warnings``) with 200, as
EJBCA does, also when nothing was written; a body that is no dump at all is a 400."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..errors import NotFoundError, ValidationError
from ..services.configdump import (
    MAX_DUMP_BYTES,
    ExportSettings,
    Pattern,
    check_dump,
    export_dump,
    find_type,
    import_dump,
    parse_zip,
    to_zip,
)
from .lookups import parse_flag, status_payload
from .serializers import StatusSerializer, with_errors

TAGS = ["v1/configdump"]
TYPES_HELP = ("CA/certification-authorities, CERTPROFILE/certificate-profiles, EEPROFILE/end-entity-profiles, "
              "SCEPCONFIG/scep-config, OAUTHKEY/trusted-oauth-providers, ROLE/admin-roles")


class ConfigdumpResultsSerializer(serializers.Serializer):
    """EJBCA's ConfigdumpResults."""

    success = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.CharField())
    warnings = serializers.ListField(child=serializers.CharField())


class ZipImportSerializer(serializers.Serializer):
    zipfile = serializers.FileField(help_text="A zip of <type directory>/<name>.yaml files")
    ignoreerrors = serializers.BooleanField(required=False, default=False)
    initialize = serializers.BooleanField(required=False, default=False)
    overwrite = serializers.ChoiceField(choices=["abort", "skip", "yes"], required=False, default="abort")
    resolve = serializers.ChoiceField(choices=["abort", "skip", "useDefault"], required=False, default="abort")
    # ``continue`` is a Python keyword: read from the form by name below.


_EXPORT_PARAMS = [
    OpenApiParameter("ignoreerrors", bool, description="Accepted; an export here has no partial errors"),
    OpenApiParameter("defaults", bool, description="Accepted; every setting is always exported"),
    OpenApiParameter("externalcas", bool, description="Also export external (imported) CAs"),
]
_FILTER_PARAMS = [
    OpenApiParameter("include", str, many=True, description="TYPE:NAME patterns ('*' wildcards, ';' separated); "
                                                            f"types: {TYPES_HELP}"),
    OpenApiParameter("exclude", str, many=True, description="TYPE:NAME patterns to leave out"),
]
_IMPORT_PARAMS = [
    OpenApiParameter("ignoreerrors", bool, description="Skip failing items (reported as warnings)"),
    OpenApiParameter("initialize", bool, description="Create new CAs on their crypto token's key when it is here"),
    OpenApiParameter("continue", bool, description="As ignoreerrors"),
    OpenApiParameter("overwrite", str, enum=["abort", "skip", "yes"], description="Existing items (default abort)"),
    OpenApiParameter("resolve", str, enum=["abort", "skip", "useDefault"],
                     description="Missing references (default abort)"),
]


def _settings(request: Request, **kw) -> ExportSettings:
    params = request.query_params
    return ExportSettings(
        include=[p for text in params.getlist("include") for p in Pattern.parse(text)],
        exclude=[p for text in params.getlist("exclude") for p in Pattern.parse(text)],
        external_cas=parse_flag(params, "externalcas"), **kw)


def _import(request: Request, doc, options) -> Response:
    actor = actor_for_request(request)
    ignore = parse_flag(options, "ignoreerrors") or parse_flag(options, "continue")
    result = import_dump(actor, doc, overwrite=str(options.get("overwrite") or "abort"),
                         resolve=str(options.get("resolve") or "abort"), ignore_errors=ignore,
                         initialize=parse_flag(options, "initialize"))
    return Response(result.as_json())


class ConfigdumpStatusView(APIView):
    @extend_schema(tags=TAGS, operation_id="configdump_status", summary="Status of the configdump resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(status_payload())


class ConfigdumpView(APIView):
    """``GET /v1/configdump`` (export JSON) and ``POST /v1/configdump`` (import JSON)."""

    parser_classes = [JSONParser]

    @extend_schema(tags=TAGS, operation_id="configdump_export", summary="The configuration as JSON",
                   parameters=[*_EXPORT_PARAMS, *_FILTER_PARAMS],
                   responses=with_errors({200: OpenApiTypes.OBJECT}, 400, 401, 403))
    def get(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require("/administrator")
        return Response(export_dump(actor, _settings(request)))

    @extend_schema(tags=TAGS, operation_id="configdump_import", summary="Import a JSON configdump, all or nothing",
                   parameters=_IMPORT_PARAMS, request=OpenApiTypes.OBJECT,
                   responses=with_errors({200: ConfigdumpResultsSerializer}, 400, 401, 403))
    def post(self, request: Request) -> Response:
        actor_for_request(request).require("/administrator")  # the rule before the body
        return _import(request, check_dump(request.data), request.query_params)


class ConfigdumpZipView(APIView):
    """``GET /v1/configdump/configdump.zip`` (export) and ``POST`` (import a multipart ``zipfile``)."""

    parser_classes = [MultiPartParser]  # EJBCA takes the zip as multipart/form-data: let through deliberately

    @extend_schema(tags=TAGS, operation_id="configdump_export_zip", summary="The configuration as a zip of YAML",
                   parameters=[*_EXPORT_PARAMS, *_FILTER_PARAMS],
                   responses=with_errors({(200, "application/zip"): OpenApiTypes.BINARY}, 400, 401, 403))
    def get(self, request: Request) -> HttpResponse:
        actor = actor_for_request(request)
        actor.require("/administrator")
        response = HttpResponse(to_zip(export_dump(actor, _settings(request))), content_type="application/zip")
        response["Content-Disposition"] = "attachment; filename=configdump.zip"
        return response

    @extend_schema(tags=TAGS, operation_id="configdump_import_zip", summary="Import a zip configdump, all or nothing",
                   request={"multipart/form-data": ZipImportSerializer},
                   responses=with_errors({200: ConfigdumpResultsSerializer}, 400, 401, 403, 415))
    def post(self, request: Request) -> Response:
        actor_for_request(request).require("/administrator")
        upload = request.FILES.get("zipfile")
        if upload is None:
            raise ValidationError("No file upload found: send the zip as the multipart field 'zipfile'.",
                                  field="zipfile")
        if upload.size > MAX_DUMP_BYTES:
            raise ValidationError(f"The zip file is larger than {MAX_DUMP_BYTES} bytes.", field="zipfile")
        return _import(request, parse_zip(upload.read()), request.data)


class ConfigdumpTypeView(APIView):
    """``GET /v1/configdump/{type}``: one type (EJBCA's name or directory); unknown type: 404."""

    @extend_schema(tags=TAGS, operation_id="configdump_export_type", summary="The configuration of one type",
                   parameters=[OpenApiParameter("type", str, OpenApiParameter.PATH, description=TYPES_HELP),
                               *_EXPORT_PARAMS],
                   responses=with_errors({200: OpenApiTypes.OBJECT}, 401, 403, 404))
    def get(self, request: Request, type: str) -> Response:  # noqa: A002 (EJBCA's path parameter name)
        actor = actor_for_request(request)
        actor.require("/administrator")
        return Response(export_dump(actor, _settings(request, only_type=find_type(type))))


class ConfigdumpSettingView(APIView):
    """``GET /v1/configdump/{type}/{setting}``: one item; none of that name: 404."""

    @extend_schema(tags=TAGS, operation_id="configdump_export_setting", summary="One item of the configuration",
                   parameters=[OpenApiParameter("type", str, OpenApiParameter.PATH, description=TYPES_HELP),
                               OpenApiParameter("setting", str, OpenApiParameter.PATH, description="Item name"),
                               *_EXPORT_PARAMS[:2]],
                   responses=with_errors({200: OpenApiTypes.OBJECT}, 401, 403, 404))
    def get(self, request: Request, type: str, setting: str) -> Response:  # noqa: A002
        actor = actor_for_request(request)
        actor.require("/administrator")
        dump = export_dump(actor, ExportSettings(only_type=find_type(type), only_name=setting, external_cas=True))
        if not dump:
            raise NotFoundError(f"No {type} item named '{setting}'.")
        return Response(dump)

"""``POST /v1/certificate/certificaterequest`` (EJBCA's "enrollment with client generated keys for an existing
end entity"): the end entity registered before (also one added after an approval) enrolls a PKCS#10 request
with its username and enrollment code; the certificate carries the end entity's subject, not the request's.
A thin view over :func:`endentities.services.enroll`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pki.api.serializers import with_errors
from pki.auth.access import actor_for_request
from pki.errors import ValidationError

from .models import EndEntity
from .serializers import CertificateResponseSerializer, Pkcs10EnrollSerializer, build_certificate_response
from .services import enroll
from .services.enrollment import deny_as_unknown

CREATE_CERTIFICATE = "/ca_functionality/create_certificate"


class CertificateRequestView(APIView):
    """201 with EJBCA's CertificateRestResponse. A caller who may not use the end entity's CA, an unknown name and
    a wrong code all get the same 403 ("Wrong username or enrollment code")."""

    @extend_schema(tags=["v1/certificate"], operation_id="certificate_certificaterequest",
                   summary="Enroll a PKCS#10 request for an existing end entity (its subject DN is used)",
                   request=Pkcs10EnrollSerializer,
                   responses=with_errors({201: CertificateResponseSerializer}, 400, 401, 403, 404, 409, 503))
    def post(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(CREATE_CERTIFICATE)
        body = Pkcs10EnrollSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        body = body.validated_data
        csr = body["certificate_request"].strip()
        if "-----BEGIN" not in csr:  # EJBCA also takes the base64 DER without PEM armour
            csr = f"-----BEGIN CERTIFICATE REQUEST-----\n{csr}\n-----END CERTIFICATE REQUEST-----\n"
        username, password = body["username"], body["password"]
        found = (EndEntity.objects.filter(username=username).select_related("ca", "end_entity_profile")
                 .first())
        if found is None or not actor.is_allowed(f"/ca/{found.ca_id}"):
            raise deny_as_unknown(username, password, interface="rest", actor_name=actor.name,
                                  reason="unknown end entity" if found is None
                                  else f"caller not authorized to /ca/{found.ca_id}")
        ca_name = body.get("certificate_authority_name") or ""
        if ca_name and ca_name not in (found.ca.name, found.ca.subject_dn):
            raise ValidationError(f"The end entity is not registered with CA '{ca_name}'.",
                                  field="certificate_authority_name")
        issued = enroll(username, password, csr=csr.encode(), interface="rest", actor=actor)
        return Response(build_certificate_response(issued.row, issued.certificate, issued.row.ca.chain(),
                                                   body["include_chain"], body["response_format"],
                                                   found.end_entity_profile.name),
                        status=http.HTTP_201_CREATED)

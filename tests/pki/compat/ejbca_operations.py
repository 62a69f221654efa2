"""The operations of EJBCA CE's REST interface, as its published OpenAPI definition describes them: method, path
template, the success status, and the JSON field names of the success response (written here from that
definition, not copied). ``BINARY``: a file body; ``EMPTY``: no body; ``"json"``: free-form JSON (the
configuration dump); a frozenset: the top-level names of the JSON object (``optional`` names may be absent, as
EJBCA leaves out null fields; ``MESSAGE``: no model declared, an empty body or EJBCA's ``{"message"}``).

Operations this project answers with a documented reason instead (``reason``) are asserted as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EMPTY = "empty"
BINARY = "binary"
# EJBCA's definition declares no response model (its client reads nothing); EJBCA itself answers a message.
MESSAGE = frozenset()
STATUS = frozenset({"status", "version", "revision"})
CERTIFICATE = frozenset({"certificate", "serial_number", "response_format", "certificate_chain",
                         "certificate_profile", "end_entity_profile"})
REVOKE_STATUS = frozenset({"issuer_dn", "serial_number", "revocation_reason", "revoked"})


@dataclass(frozen=True)
class Operation:
    """One EJBCA REST operation and what a successful call answers."""

    key: str
    method: str
    path: str  # EJBCA's template, relative to /ejbca/ejbca-rest-api
    status: int
    body: frozenset[str] | str
    optional: frozenset[str] = field(default_factory=frozenset)
    reason: str = ""  # set when this project answers otherwise on purpose (``status`` is then that answer)


OPERATIONS: list[Operation] = [
    # v1/ca
    Operation("ca_status", "GET", "/v1/ca/status", 200, STATUS),
    Operation("ca_list", "GET", "/v1/ca", 200, frozenset({"certificate_authorities"})),
    Operation("ca_certificate_download", "GET", "/v1/ca/{subject_dn}/certificate/download", 200, BINARY),
    Operation("ca_latest_crl", "GET", "/v1/ca/{issuer_dn}/getLatestCrl", 200, frozenset({"crl", "response_format"})),
    Operation("ca_create_crl", "POST", "/v1/ca/{issuer_dn}/createcrl", 200, frozenset({
        "issuer_dn", "latest_crl_version", "latest_delta_crl_version", "latest_partition_crl_versions",
        "latest_partition_delta_crl_versions", "all_success"})),
    Operation("ca_import_crl", "POST", "/v1/ca/{issuer_dn}/importcrl", 200, EMPTY),
    # v1/ca_management
    Operation("ca_management_status", "GET", "/v1/ca_management/status", 200, STATUS),
    Operation("ca_management_activate", "PUT", "/v1/ca_management/{ca_name}/activate", 200, EMPTY),
    Operation("ca_management_deactivate", "PUT", "/v1/ca_management/{ca_name}/deactivate", 200, EMPTY),
    # v1/certificate
    Operation("certificate_status", "GET", "/v1/certificate/status", 200, STATUS),
    Operation("certificate_request", "POST", "/v1/certificate/certificaterequest", 201, CERTIFICATE),
    Operation("certificate_finalize", "POST", "/v1/certificate/{request_id}/finalize", 201, CERTIFICATE),
    Operation("certificate_enrollkeystore", "POST", "/v1/certificate/enrollkeystore", 201, CERTIFICATE),
    Operation("certificate_pkcs10enroll", "POST", "/v1/certificate/pkcs10enroll", 201, CERTIFICATE),
    Operation("certificate_revoke", "PUT", "/v1/certificate/{issuer_dn}/{certificate_serial_number}/revoke", 200,
              REVOKE_STATUS, optional=frozenset({"revocation_date", "message"})),
    Operation("certificate_revocation_status", "GET",
              "/v1/certificate/{issuer_dn}/{certificate_serial_number}/revocationstatus", 200, REVOKE_STATUS,
              optional=frozenset({"revocation_date", "message"})),
    Operation("certificate_expire", "GET", "/v1/certificate/expire", 200,
              frozenset({"pagination_rest_response_component", "certificates_rest_response"})),
    Operation("certificate_search", "POST", "/v1/certificate/search", 200, frozenset({"certificates", "more_results"})),
    # v1/configdump
    Operation("configdump_status", "GET", "/v1/configdump/status", 200, STATUS),
    Operation("configdump_export", "GET", "/v1/configdump", 200, "json"),
    Operation("configdump_export_type", "GET", "/v1/configdump/{type}", 200, "json"),
    Operation("configdump_export_setting", "GET", "/v1/configdump/{type}/{setting}", 200, "json"),
    Operation("configdump_export_zip", "GET", "/v1/configdump/configdump.zip", 200, BINARY),
    Operation("configdump_import", "POST", "/v1/configdump", 200, "json"),
    Operation("configdump_import_zip", "POST", "/v1/configdump/configdump.zip", 200, "json"),
    # v1/cryptotoken
    Operation("cryptotoken_status", "GET", "/v1/cryptotoken/status", 200, STATUS),
    Operation("cryptotoken_activate", "PUT", "/v1/cryptotoken/{cryptotoken_name}/activate", 200, EMPTY),
    Operation("cryptotoken_deactivate", "PUT", "/v1/cryptotoken/{cryptotoken_name}/deactivate", 200, MESSAGE,
              optional=frozenset({"message"})),
    Operation("cryptotoken_generatekeys", "POST", "/v1/cryptotoken/{cryptotoken_name}/generatekeys", 200, EMPTY),
    Operation("cryptotoken_removekeys", "POST", "/v1/cryptotoken/{cryptotoken_name}/{key_pair_alias}/removekeys",
              200, MESSAGE, optional=frozenset({"message"})),
    # v1/endentity
    Operation("endentity_status", "GET", "/v1/endentity/status", 200, STATUS),
    Operation("endentity_add", "POST", "/v1/endentity", 200, EMPTY),
    Operation("endentity_edit", "POST", "/v1/endentity/edit", 200, EMPTY),
    Operation("endentity_search", "POST", "/v1/endentity/search", 200, frozenset({"end_entities", "more_results"})),
    Operation("endentity_setstatus", "POST", "/v1/endentity/{endentity_name}/setstatus", 200, EMPTY),
    Operation("endentity_revoke", "PUT", "/v1/endentity/{endentity_name}/revoke", 200, EMPTY),
    Operation("endentity_delete", "DELETE", "/v1/endentity/{endentity_name}", 200, EMPTY),
    # v1/ssh: no SSH CA here
    Operation("ssh_status", "GET", "/v1/ssh/status", 404, frozenset({"error_code", "error_message"}),
              reason="no SSH CA in this project (README)"),
    Operation("ssh_pubkey", "GET", "/v1/ssh/{ca_name}/pubkey", 404, frozenset({"error_code", "error_message"}),
              reason="no SSH CA in this project (README)"),
    # etsi/v1: no ETSI ITS CA here
    Operation("etsi_validate", "POST", "/etsi/v1/certificate/{ecacertificateid}/validate", 404,
              frozenset({"error_code", "error_message"}), reason="no ETSI ITS (C-ITS) CA in this project (README)"),
    # v1/system
    Operation("system_service_run", "PUT", "/v1/system/service/{service_name}/run", 200, EMPTY),
    # v2/certificate
    Operation("certificate_v2_status", "GET", "/v2/certificate/status", 200, STATUS),
    Operation("certificate_v2_count", "GET", "/v2/certificate/count", 200, frozenset({"count"})),
    Operation("certificate_v2_search", "POST", "/v2/certificate/search", 200,
              frozenset({"certificates", "pagination_summary"})),
    Operation("certificate_v2_profile", "GET", "/v2/certificate/profile/{profile_name}", 200, frozenset({
        "available_key_algs", "available_bit_lenghts", "available_ecdsa_curves", "available_cas"})),
    Operation("certificate_v2_keyrecover", "PUT",
              "/v2/certificate/{issuer_dn}/{certificate_serial_number}/keyrecover", 400,
              frozenset({"error_code", "error_message"}),
              reason="no key archive here: EJBCA's answer when key recovery is disabled (README)"),
    # v2/endentity
    Operation("endentity_v2_status", "GET", "/v2/endentity/status", 200, STATUS),
    Operation("endentity_v2_profiles_authorized", "GET", "/v2/endentity/profiles/authorized", 200,
              frozenset({"end_entitie_profiles"})),
    Operation("endentity_v2_profile", "GET", "/v2/endentity/profile/{endentity_profile_name}", 200, frozenset({
        "end_entity_profile_name", "subject_distinguished_name_fields", "subject_alternative_name_fields",
        "available_certificate_profiles", "available_cas"})),
    Operation("endentity_v2_search", "POST", "/v2/endentity/search", 200,
              frozenset({"end_entities", "more_results"})),
]

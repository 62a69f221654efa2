"""End entity services: what the admin UI, the RA portal, REST, SCEP and the CLI call.

End entities (``entities``):
    add_end_entity(actor, data: EndEntityInput, *, profile=None) -> EndEntity
    edit_end_entity(actor, username, data: EndEntityInput) -> EndEntity
    set_status(actor, username, status) -> EndEntity            (NEW resets the request counter)
    set_password(actor, username, password, *, clear=False) / set_clear_password(actor, username, password)
    revoke_end_entity(actor, username, reason) -> EndEntity     (the entity and all its certificates)
    delete_end_entity(actor, username, *, revoke_reason=None)
    find_end_entity(actor, username) -> EndEntity
    search_end_entities(actor, EndEntityQuery) -> QuerySet[EndEntity]
    certificates_of(actor, ee) -> QuerySet[Certificate]
    get_end_entity_profile(name_or_id_or_None) -> EndEntityProfile
Enrollment (``enrollment``), all through ``pki.issuance.issue``:
    enroll(username, password, *, csr=None, public_key=None, interface, actor=None) -> IssuedCertificate
    enroll_with_ra(actor, username, *, csr=None, public_key=None, interface="ra") -> IssuedCertificate
    add_and_enroll_with_ra(actor, data, *, profile=None, csr=None, interface="ra") -> IssuedCertificate
        (both in the caller's transaction, the row written once; EndEntityExists when the username is taken)
    prepare_add_and_enroll_with_ra(...) -> function: the same in two steps, the checks and the signature now,
        the writes when the function is called in the caller's transaction
    enroll_keystore(username, password, *, key_alg, key_spec, interface, actor=None, with_ra=False)
        -> EnrolledKeystore (keystore bytes in the token format, the certificate, the chain)
    EnrollmentDenied: wrong username/code or a status that may not enroll (HTTP 403)
Built-in data: ensure_empty_profile(created=None) -> the EMPTY profile.
"""

from .builtin import EMPTY, ensure_empty_profile
from .enrollment import (
    EnrolledKeystore,
    EnrollmentDenied,
    add_and_enroll_with_ra,
    enroll,
    enroll_keystore,
    enroll_with_ra,
    prepare_add_and_enroll_with_ra,
    renewal_allowed,
)
from .entities import (
    EndEntityExists,
    EndEntityQuery,
    add_end_entity,
    certificates_of,
    delete_end_entity,
    edit_end_entity,
    find_end_entity,
    get_end_entity_profile,
    revoke_end_entity,
    search_end_entities,
    set_clear_password,
    set_password,
    set_status,
)

__all__ = [
    "EMPTY",
    "EndEntityExists",
    "EndEntityQuery",
    "EnrolledKeystore",
    "EnrollmentDenied",
    "add_and_enroll_with_ra",
    "add_end_entity",
    "certificates_of",
    "delete_end_entity",
    "edit_end_entity",
    "enroll",
    "enroll_keystore",
    "enroll_with_ra",
    "ensure_empty_profile",
    "find_end_entity",
    "get_end_entity_profile",
    "prepare_add_and_enroll_with_ra",
    "renewal_allowed",
    "revoke_end_entity",
    "search_end_entities",
    "set_clear_password",
    "set_password",
    "set_status",
]

"""Renaming an end entity (EJBCA's ``ra renameendentity``): the username moves with its certificates."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from pki import audit
from pki.auth.access import Actor
from pki.errors import ConflictError, NotFoundError, ValidationError
from pki.models import Certificate

from ..models import EndEntity
from .common import AUDIT_EDIT, require


def rename_end_entity(actor: Actor, current: str, new: str) -> EndEntity:
    """Give an end entity another username; its certificates are recorded under the new one too. The new name
    must be free (a database constraint decides between concurrent renames). Needs the edit rights on the end
    entity's profile and CA; audited as an edit naming both usernames."""
    new = (new or "").strip()
    if not new or len(new) > 255:
        raise ValidationError("A username of 1 to 255 characters is required.", field="new")
    with transaction.atomic():
        ee = EndEntity.objects.select_for_update().filter(username=current).first()
        if ee is None:
            raise NotFoundError(f"End entity '{current}' does not exist.")
        require(actor, "edit", ee.end_entity_profile_id, ee.ca_id)
        if new == current:
            return ee
        try:
            with transaction.atomic():
                EndEntity.objects.filter(pk=ee.pk).update(username=new)
        except IntegrityError:
            raise ConflictError(f"An end entity named '{new}' already exists.", field="new") from None
        moved = Certificate.objects.filter(username=current).update(username=new)
        audit.record(AUDIT_EDIT, actor.name, object_type="endentity", object_id=new,
                     details={"renamed_from": current, "renamed_to": new, "certificates": moved},
                     in_transaction=True)
    ee.username = new
    return ee

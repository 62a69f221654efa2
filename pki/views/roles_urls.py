"""Routes of the "Roles and Access Rules" pages and their navigation entry."""

from django.urls import path

from ..services.roles import VIEW_RULE
from . import roles
from .context import NavItem, register_nav

urlpatterns = [
    path("roles/", roles.role_list, name="role-list"),
    path("roles/new/", roles.role_create, name="role-create"),
    path("roles/new/template/", roles.role_from_template, name="role-from-template"),
    path("roles/<int:pk>/", roles.role_detail, name="role-detail"),
    path("roles/<int:pk>/edit/", roles.role_edit, name="role-edit"),
    path("roles/<int:pk>/delete/", roles.role_delete, name="role-delete"),
    path("roles/<int:pk>/members/add/", roles.member_add, name="role-member-add"),
    path("roles/<int:pk>/members/<int:member_id>/remove/", roles.member_remove, name="role-member-remove"),
    path("roles/<int:pk>/rules/", roles.role_rules, name="role-rules"),
]

register_nav(NavItem("Roles and access rules", "role-list", VIEW_RULE, "System"))

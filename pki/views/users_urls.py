"""Routes of the local users pages, the own account pages and the start page, and the "Local users" entry."""

from django.urls import path

from ..services.users import MANAGE_RULE
from . import auth, users
from .context import NavItem, register_nav

urlpatterns = [
    path("start/", auth.landing, name="landing"),
    path("account/", users.account, name="account"),
    path("account/password/", users.password_change_view, name="password-change"),
    path("users/", users.user_list, name="user-list"),
    path("users/new/", users.user_create, name="user-create"),
    path("users/<str:username>/reset/", users.user_reset, name="user-reset"),
    path("users/<str:username>/disable/", users.user_set_active, {"action": "disable"}, name="user-disable"),
    path("users/<str:username>/enable/", users.user_set_active, {"action": "enable"}, name="user-enable"),
]

register_nav(NavItem("Local users", "user-list", MANAGE_RULE, "System"))

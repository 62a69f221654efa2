"""SCEP URLs: the public endpoint under EJBCA's paths and the short one, and the admin pages."""

from django.urls import path

from pki.views.context import NavItem, register_nav

from . import admin_views, views

urlpatterns = [
    path("ejbca/publicweb/apply/scep/pkiclient.exe", views.pkiclient, name="scep-default"),
    path("ejbca/publicweb/apply/scep/<str:alias>/pkiclient.exe", views.pkiclient, name="scep-alias"),
    path("scep/pkiclient.exe", views.pkiclient, name="scep-short-default"),
    path("scep/<str:alias>/pkiclient.exe", views.pkiclient, name="scep-short"),
    path("system/scep/", admin_views.alias_list, name="scep-alias-list"),
    path("system/scep/new/", admin_views.alias_create, name="scep-alias-create"),
    path("system/scep/<str:name>/edit/", admin_views.alias_edit, name="scep-alias-edit"),
    path("system/scep/<str:name>/delete/", admin_views.alias_delete, name="scep-alias-delete"),
    path("system/scep/<str:name>/ra-certificate/", admin_views.alias_ra_certificate, name="scep-alias-ra-cert"),
]

register_nav(NavItem("SCEP Configuration", "scep-alias-list", admin_views.RULE, "System"))

"""Unknown paths: JSON in EJBCA's error shape under the REST prefixes, the HTML page elsewhere."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ejbca/ejbca-rest-api/v1/nosuch", "/ejbca/ejbca-rest-api/v2/ca",
                                  "/api/v1/nosuch/"])
def test_unknown_api_path_is_json_404(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r["Content-Type"].startswith("application/json")
    assert r.json()["error_code"] == 404 and path in r.json()["error_message"]


@pytest.mark.django_db
def test_unknown_page_is_html_404(client):
    r = client.get("/no/such/page/")
    assert r.status_code == 404 and r["Content-Type"].startswith("text/html")

"""A known path asked with a method it doesn't take answers 405 in the API's error shape with an `Allow`
header naming the methods it does take; a path no route has stays 404."""

from __future__ import annotations

import re
from collections import defaultdict

from packyard.http.errors import HTTP_STATUS
from tests.conftest import Env
from tests.support.client import error, ok

METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")


def _concrete(template: str) -> str:
    """The template with each parameter given a plain value."""
    return re.sub(r"\{[^}]+\}", "x1", template)


def test_every_known_path_answers_405_with_allow_for_every_other_method(env: Env) -> None:
    by_template: dict[str, set[str]] = defaultdict(set)
    for route in env.app.router.routes:
        by_template[route.template].add(route.method)
    assert len(by_template) > 40  # every tree's routes, not a handful
    checked = 0
    for template, methods in by_template.items():
        path = _concrete(template)
        # Another template may take the same concrete path ({slug} beside a literal), so the Allow header
        # is every method some route takes at this path: the router's own answer, checked to include ours.
        for method in METHODS:
            if method in methods:
                continue
            if env.app.router.match(method, path)[0] is not None:  # another template takes it (a literal)
                continue
            response = env.client.request(method, path, token="")
            assert response.status_code == 405, (method, path, response.text)
            body = response.json()
            assert body["code"] == 12
            assert body["message"] == body["error"]
            assert body["details"] == []
            assert method in body["message"]
            allow = response.headers["allow"].split(", ")
            assert allow == sorted(allow)
            assert methods <= set(allow), (path, allow)
            assert method not in allow
            checked += 1
    assert checked > 100


def test_the_allow_header_lists_exactly_what_is_served(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "web"}))
    response = c.request("PUT", c.p("/images/web"))
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert response.headers["content-type"] == "application/json"
    for method in response.headers["allow"].split(", "):
        answered = c.request(method, c.p("/images/nope"), json={} if method == "PATCH" else None)
        assert answered.status_code not in (404, 405) or answered.json()["code"] == 5, (method, answered.text)
        assert "no operation" not in answered.text
    # The 2023-01-01 tree and the resource manager's paths alike.
    newer = c.request("PUT", c.p23("/buckets/web"))
    assert newer.status_code == 405
    assert set(newer.headers["allow"].split(", ")) == {"DELETE", "GET", "PATCH"}
    orgs = c.request("DELETE", "/resource-manager/2019-12-10/organizations")
    assert orgs.status_code == 405
    assert "GET" in orgs.headers["allow"]


def test_a_wrong_method_changes_nothing(env: Env) -> None:
    c = env.client
    ok(c.put(c.p("/images"), json={"bucket_slug": "kept"}))
    assert c.request("PUT", c.p("/images/kept"), json={"description": "changed"}).status_code == 405
    assert ok(c.get(c.p("/images/kept")))["bucket"].get("description", "") == ""


def test_unknown_paths_stay_404(env: Env) -> None:
    c = env.client
    for method in METHODS:
        for path in ("/packer/nothing", c.p("/images/web/nothing/here"), "/packer/2021-04-30/organizations"):
            response = c.request(method, path, token="")
            message = error(response, 5, 404)
            assert "unknown path" in message
            assert "allow" not in response.headers
    assert HTTP_STATUS[5] == 404
    # Outside the API's roots a path is the web console's: its own 404 page, not an API error.
    page = c.get("/nothing", token="")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")

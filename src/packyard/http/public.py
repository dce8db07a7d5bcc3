"""The routes that answer without a bearer token, listed here and only here: token issue, health and
readiness, the run-task URL HCP Terraform calls (authenticated by its HMAC signature instead), and
/metrics (authenticated by PACKYARD_METRICS_TOKEN, and answered only when that is set)."""

from __future__ import annotations

from packyard.http.oauth import issue_token, token_needs_post
from packyard.http.request import Request
from packyard.http.routing import Access, Route
from packyard.http.run_task_hook import receive as run_task_request
from packyard.ops.metrics import metrics_route
from packyard.ops.readiness import readyz
from packyard.pipeline.services import Services


def healthz(svc: Services, request: Request) -> bytes:
    return b'{"status":"ok"}'


# Every route that answers without a bearer token is listed here, and only here.
PUBLIC_ROUTES: list[Route] = [
    Route("POST", "/oauth2/token", "OAuth2Token", access=Access.PUBLIC, public=issue_token),
    Route("POST", "/oauth/token", "OAuthToken", access=Access.PUBLIC, public=issue_token),
    # GET on the token paths is a client's mistake worth naming: 405 with Allow: POST, not "no such path".
    Route("GET", "/oauth2/token", "OAuth2TokenGet", access=Access.PUBLIC, public=token_needs_post),
    Route("GET", "/oauth/token", "OAuthTokenGet", access=Access.PUBLIC, public=token_needs_post),
    Route("GET", "/healthz", "Health", access=Access.PUBLIC, public=healthz),
    Route("GET", "/readyz", "Ready", access=Access.PUBLIC, public=readyz),  # what is not ready: ops/readiness.py
    Route("GET", "/metrics", "Metrics", access=Access.PUBLIC, public=metrics_route),  # ops/metrics.py
    # What GetRegistryTFCRunTaskAPI gives out in each API tree: signed by the registry's HMAC key.
    *(
        Route(
            "POST",
            f"/packer/{version}/runtask/{{api_id}}/{{task_type}}",
            f"RunTaskRequest{version[:4]}",
            access=Access.PUBLIC,
            public=run_task_request,
        )
        for version in ("2021-04-30", "2023-01-01")
    ),
]

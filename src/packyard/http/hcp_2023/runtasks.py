"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey (declared in http/runtasks.py): the same
key as 2021-04-30's."""

from __future__ import annotations

from packyard.http import runtasks
from packyard.http.hcp_2023.common import API, route
from packyard.http.routing import Route

ROUTES: list[Route] = runtasks.routes(route, API)

"""GetRegistryTFCRunTaskAPI and RegenerateTFCRunTaskHmacKey (declared in http/runtasks.py)."""

from __future__ import annotations

from packyard.http import runtasks
from packyard.http.hcp_2021.common import API, route
from packyard.http.routing import Route

ROUTES: list[Route] = runtasks.routes(route, API)

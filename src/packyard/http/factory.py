"""Build the ASGI application from settings."""

from __future__ import annotations

from packyard.clock import Clock, SystemClock
from packyard.config import Settings
from packyard.console.app import create_console
from packyard.http.app import App
from packyard.http.hcp_2021 import ancestry, buckets, builds, channels, iterations, registry, runtasks
from packyard.http.hcp_2023 import ancestry as ancestry_2023
from packyard.http.hcp_2023 import buckets as buckets_2023
from packyard.http.hcp_2023 import builds as builds_2023
from packyard.http.hcp_2023 import channels as channels_2023
from packyard.http.hcp_2023 import registry as registry_2023
from packyard.http.hcp_2023 import runtasks as runtasks_2023
from packyard.http.hcp_2023 import sboms as sboms_2023
from packyard.http.hcp_2023 import search as search_2023
from packyard.http.hcp_2023 import versions as versions_2023
from packyard.http.public import PUBLIC_ROUTES
from packyard.http.resource_manager import ROUTES as RESOURCE_MANAGER_ROUTES
from packyard.http.routing import Route
from packyard.pipeline.services import Services
from packyard.storage.db import Database

HCP_2021_ROUTES: list[Route] = [
    *registry.ROUTES,
    *buckets.ROUTES,
    *iterations.ROUTES,
    *builds.ROUTES,
    *channels.ROUTES,
    *ancestry.ROUTES,
    *runtasks.ROUTES,
]

# The same domain, projected as 2023-01-01 (what Packer >= 1.10.1 and terraform-provider-hcp >= 0.84 speak).
HCP_2023_ROUTES: list[Route] = [
    *registry_2023.ROUTES,
    *buckets_2023.ROUTES,
    *versions_2023.ROUTES,
    *builds_2023.ROUTES,
    *channels_2023.ROUTES,
    *ancestry_2023.ROUTES,
    *runtasks_2023.ROUTES,
    *sboms_2023.ROUTES,
    *search_2023.ROUTES,
]


def create_app(
    settings: Settings, *, db: Database | None = None, clock: Clock | None = None, console: bool = True
) -> App:
    database = db or Database(settings.effective_database_url)
    services = Services(settings, database, clock or SystemClock())
    routes = [*PUBLIC_ROUTES, *RESOURCE_MANAGER_ROUTES, *HCP_2021_ROUTES, *HCP_2023_ROUTES]
    return App(services, routes, console=create_console(services) if console else None)


def app_from_env() -> App:
    """The factory `packyard serve --workers N` hands uvicorn: each worker builds its app from PACKYARD_*."""
    return create_app(Settings.from_env())

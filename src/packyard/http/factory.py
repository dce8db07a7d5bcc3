"""Build the ASGI application from settings."""

from __future__ import annotations

from packyard.clock import Clock, SystemClock
from packyard.config import Settings
from packyard.http.app import App
from packyard.http.hcp_2021 import ancestry, buckets, builds, channels, iterations, registry, runtasks
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


def create_app(settings: Settings, *, db: Database | None = None, clock: Clock | None = None) -> App:
    database = db or Database(settings.effective_database_url)
    services = Services(settings, database, clock or SystemClock())
    return App(services, [*PUBLIC_ROUTES, *RESOURCE_MANAGER_ROUTES, *HCP_2021_ROUTES])


def app_from_env() -> App:
    """The factory `packyard serve --workers N` hands uvicorn: each worker builds its app from PACKYARD_*."""
    return create_app(Settings.from_env())

"""The console's home page: the projects the user's role reaches. (The read pages: console/browse.py.)"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.console.web import Console, SignedOut
from packyard.domain.models import Project, UserSession
from packyard.storage.unit_of_work import SqlUnitOfWork


def project_url(org_id: str, project_id: str) -> str:
    return f"/orgs/{org_id}/projects/{project_id}"


class Pages:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def home(self, request: Request) -> Response:
        """The projects the user's role reaches; a user of one project goes straight to its buckets."""
        console = self.console

        def projects(uow: SqlUnitOfWork, session: UserSession) -> list[Project]:
            user = session.user
            found = uow.tenants.list_projects(user.organization_id)
            return [p for p in found if user.project_id in (None, p.id)]

        try:
            acting = await console.in_session(request, projects)
        except SignedOut:
            return console.to_sign_in(request)
        found: list[Project] = acting.result
        if len(found) == 1:
            return console.redirect(project_url(found[0].organization_id, found[0].id))
        return console.render(request, "home.html", {"session": acting.session, "projects": found})

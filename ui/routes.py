"""The app's pages in one table: app.py builds the navigation from it, links are built from it, and each
route declares the state that changes what it shows (beyond the global filter, which every page has)."""

from __future__ import annotations

from dataclasses import dataclass

from ui.view_state import BRUSH, OUTCOME, TRACE, Param


@dataclass(frozen=True)
class Route:
    name: str  # the view's module name, also the page name snapshots record
    title: str
    icon: str
    url_path: str  # "" for the default page: Streamlit serves it at "/" and nowhere else
    # The page's own state, in the URL and in snapshots. Service map has none of its own: its selected
    # node is the global filter's service.
    params: tuple[Param, ...] = ()


ROUTES = (
    Route("overview", "Overview", ":material/emergency:", ""),
    Route("cohorts", "Cohorts", ":material/group:", "cohorts", (OUTCOME, BRUSH)),
    Route("traces", "Traces", ":material/timeline:", "traces", (TRACE,)),
    Route("service_map", "Service map", ":material/hub:", "service-map"),
    Route("breakers", "Breakers", ":material/electric_bolt:", "breakers"),
    Route("pools", "Pools", ":material/water_full:", "pools"),
    Route("snapshots", "Snapshots", ":material/photo_camera:", "snapshots"),
    Route("sources", "Sources", ":material/power:", "sources"),
)


def url_path(name: str) -> str:
    """The URL path of a view by name ("" for the default page, and for an unknown name)."""
    return next((r.url_path for r in ROUTES if r.name == name), "")


def route(name: str) -> Route | None:
    """The route of a view by name, None for an unknown one."""
    return next((r for r in ROUTES if r.name == name), None)


def route_for_path(path: str) -> Route:
    """The route served at a URL path (the default page for "" and anything unknown)."""
    path = path.strip("/")
    return next((r for r in ROUTES if r.url_path == path), ROUTES[0])


def params_of(name: str) -> tuple[Param, ...]:
    found = route(name)
    return found.params if found else ()

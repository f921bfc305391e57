"""The app's pages in one table: app.py builds the navigation from it, links are built from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    name: str  # the view's module name, also the page name snapshots record
    title: str
    icon: str
    url_path: str  # "" for the default page: Streamlit serves it at "/" and nowhere else


ROUTES = (
    Route("overview", "Overview", ":material/emergency:", ""),
    Route("cohorts", "Cohorts", ":material/group:", "cohorts"),
    Route("traces", "Traces", ":material/timeline:", "traces"),
    Route("service_map", "Service map", ":material/hub:", "service-map"),
    Route("breakers", "Breakers", ":material/electric_bolt:", "breakers"),
    Route("pools", "Pools", ":material/water_full:", "pools"),
    Route("snapshots", "Snapshots", ":material/photo_camera:", "snapshots"),
    Route("sources", "Sources", ":material/power:", "sources"),
)


def url_path(name: str) -> str:
    """The URL path of a view by name ("" for the default page, and for an unknown name)."""
    return next((r.url_path for r in ROUTES if r.name == name), "")

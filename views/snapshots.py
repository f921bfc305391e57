"""Snapshots: list, open, export (HTML / snapshot file), import by upload, delete, retention."""

from __future__ import annotations

import os

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from snapshots.archive import SUFFIX, ImportLimits
from snapshots.audit import audit
from snapshots.bundle import SnapshotError
from snapshots.export import export_html, format_value
from snapshots.store import SnapshotInfo, SnapshotStore
from ui import panels
from ui.actor import current_actor
from ui.routes import route
from ui.snapshot_mode import PARAM, active_snapshot, leave_snapshot, snapshot_error, store, taken_at
from ui.text import md_escape

header = panels.page_header("Snapshots", "Frozen views that open exactly as the sharer saw them, long after the backends "
                                "dropped the data.")
snapshot_store = store()


def _env_number(name: str) -> float | None:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


# A standing policy from the environment is applied whenever this page loads.
POLICY_AGE_DAYS = _env_number("FAULTLINE_SNAPSHOT_MAX_AGE_DAYS")
POLICY_COUNT = _env_number("FAULTLINE_SNAPSHOT_MAX_COUNT")
if POLICY_AGE_DAYS or POLICY_COUNT:
    expired = snapshot_store.apply_retention(max_age_days=POLICY_AGE_DAYS,
                                             max_count=int(POLICY_COUNT) if POLICY_COUNT else None)
    if expired:
        st.caption(f"Retention policy removed {len(expired)} expired snapshot(s).")


ACTOR = current_actor()  # read here: download callbacks run in a thread without the request


def _html(sid: str) -> bytes:
    audit("export_html", sid, ACTOR)
    return export_html(snapshot_store.open(sid)).encode("utf-8")


def _file(sid: str) -> bytes:
    audit("export_file", sid, ACTOR)
    return snapshot_store.export_file(sid)


def _delete(target: SnapshotStore, sid: str) -> None:
    if st.session_state.get("snapshot_active_id") == sid:
        leave_snapshot()
    deleted = target.delete(sid)
    if deleted:
        audit("delete", sid, ACTOR)
    st.session_state["snapshots_flash"] = "Deleted." if deleted else "It was already gone."


def _downloads(sid: str, enabled: bool, where: str) -> None:
    cols = st.columns(2)
    cols[0].download_button("Export HTML (postmortem)", data=lambda: _html(sid), file_name=f"faultline-{sid[:8]}.html",
                            mime="text/html", on_click="ignore", disabled=not enabled, key=f"snapshots_html_{where}",
                            icon=":material/description:")
    cols[1].download_button("Download snapshot file", data=lambda: _file(sid),
                            file_name=f"faultline-{sid[:8]}{SUFFIX}", mime="application/zip", on_click="ignore",
                            disabled=not enabled, key=f"snapshots_file_{where}", icon=":material/download:")


active = active_snapshot()
if active is None and (problem := snapshot_error()):
    st.error(f"**The snapshot in this link cannot be opened.** {md_escape(problem)}")
    st.button("Clear the link", on_click=leave_snapshot, key="snapshots_clear_link")
if active is not None:
    m = active.manifest
    st.subheader("Open snapshot")
    st.markdown(f"**{md_escape(m.title)}** — taken {taken_at(active)}" + (f" by {md_escape(m.author)}" if m.author else ""))
    if m.notes:
        st.text(m.notes)
    if m.values:  # the results as the postmortem export words them, not a JSON dump
        st.dataframe(pl.DataFrame({"result": [k.replace("_", " ") for k in m.values],
                                   "value": [format_value(k, v) for k, v in m.values.items()]}),
                     hide_index=True, width="stretch")
    for name, table in active.tables.items():
        st.caption(md_escape(name))
        st.dataframe(table, hide_index=True, width="stretch")
    for i, (name, fig) in enumerate(active.figures.items()):
        st.caption(md_escape(name))
        st.plotly_chart(go.Figure(fig), key=f"snapshots_fig_{i}", width="stretch")
    _downloads(active.id or "", True, "active")
    st.divider()

if flash := st.session_state.pop("snapshots_flash", None):
    st.success(flash)

st.subheader("Saved snapshots")
try:
    infos: list[SnapshotInfo] = snapshot_store.list()
except OSError as exc:
    st.error(f"The snapshot store {snapshot_store.location} cannot be read: {exc.strerror or exc}")
    infos = []
if not infos:
    st.info("No snapshots yet. Use the **Snapshot** button on any page to freeze what you see.")
else:
    table = pl.DataFrame(
        {
            "title": [i.title for i in infos],
            "taken (UTC)": [(i.created_at or "")[:16].replace("T", " ") for i in infos],
            "author": [i.author or "" for i in infos],
            "page": [i.page for i in infos],
            "size (KB)": [round(i.size_bytes / 1024, 1) for i in infos],
            "status": [i.status if i.status == "ok" else f"{i.status}: {i.error}" for i in infos],
            "link": [f"./?{PARAM}={i.id}" if i.status == "ok" else None for i in infos],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"link": st.column_config.LinkColumn("open", display_text="open")})
    by_id = {i.id: i for i in infos}
    chosen = st.selectbox("Snapshot", list(by_id), key="snapshots_pick",
                          format_func=lambda sid: f"{by_id[sid].title} · {(by_id[sid].created_at or '')[:16]} · {sid[:8]}")
    info = by_id[chosen]
    if info.status != "ok":
        st.warning(f"This snapshot cannot be opened ({info.status}): {info.error}")
    else:
        st.page_link(f"views/{info.page if route(info.page) else 'overview'}.py", label="Open this snapshot",
                     query_params={PARAM: chosen},
                     icon=":material/open_in_new:")
    _downloads(chosen, info.status == "ok", "pick")
    try:
        opens = snapshot_store.opened_by(chosen)
    except (SnapshotError, OSError):
        opens = []  # the list above already said whether the store can be read
    if opens:
        st.caption("Opened by (newest first): " + md_escape(", ".join(
            f"{o.who or 'anonymous'} from {o.remote_addr or 'unknown'} at {o.at[:16].replace('T', ' ')}" for o in opens)))
    confirm = st.checkbox("I want to delete this snapshot", key="snapshots_confirm_delete")
    st.button("Delete", disabled=not confirm, on_click=_delete, args=(snapshot_store, chosen), key="snapshots_delete",
              icon=":material/delete:")

st.subheader("Import")
upload = st.file_uploader(f"A snapshot file ({SUFFIX}) from another Faultline", type=["zip"], key="snapshots_upload",
                          max_upload_size=ImportLimits().max_file_bytes // (1024 * 1024))
if upload is not None:
    try:
        new_id = snapshot_store.import_file(upload.getvalue())  # same bytes again → same id, so reruns are harmless
    except SnapshotError as exc:
        st.error(f"Not imported: {exc}")
    else:
        st.success(f"Imported as snapshot {new_id}.")
        st.page_link("views/overview.py", label="Open it", query_params={PARAM: new_id})

st.subheader("Retention")
cols = st.columns(2)
max_age = cols[0].number_input("Delete snapshots older than (days; 0 = no limit)", min_value=0, value=0, step=1,
                               key="snapshots_max_age")
max_count = cols[1].number_input("Keep at most (0 = no limit)", min_value=0, value=0, step=1, key="snapshots_max_count")
if st.button("Apply retention", key="snapshots_retention", disabled=not (max_age or max_count)):
    deleted = snapshot_store.apply_retention(max_age_days=max_age or None, max_count=max_count or None)
    st.session_state["snapshots_flash"] = f"Retention deleted {len(deleted)} snapshot(s)."
    st.rerun()
policy = [f"older than {POLICY_AGE_DAYS:g} days" if POLICY_AGE_DAYS else "", f"beyond the newest {POLICY_COUNT:g}"
          if POLICY_COUNT else ""]
st.caption(f"Store: {md_escape(snapshot_store.location)}. Standing policy (FAULTLINE_SNAPSHOT_MAX_AGE_DAYS / _MAX_COUNT): "
           + (md_escape(" and ".join(p for p in policy if p)) or "none") + ".")
panels.snapshot_slot(header, "snapshots")

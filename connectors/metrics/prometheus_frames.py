"""Apply a MappingSet to a samples frame (``connectors.metrics.samples``): pure polars, no I/O.

``breakers_from_samples``/``pools_from_samples``/``events_from_samples`` are the engine behind
``connectors.metrics.prometheus``'s ``*_from_prometheus`` converters and the exposition-text tests.
"""

from __future__ import annotations

import re

import polars as pl

from connectors.metrics.prometheus_mapping import EventRule, Family, FieldSpec, MappingSet
from connectors.metrics.samples import NAME, TS, VALUE
from model.schemas import BREAKER_STATES, BREAKERS, EVENTS, POOLS, empty_frame

INST, KEY = "__instance", "__key"
_INT_COLUMNS = {"calls", "not_permitted_calls", "active", "idle", "pending", "max", "timeouts"}


def breakers_from_samples(samples: pl.DataFrame, mapping: MappingSet, source: str = "prometheus") -> pl.DataFrame:
    """Samples → breakers frame, one row per (ts, breaker, instance) per family."""
    return _kind_frame(samples, mapping, "breakers", source)


def pools_from_samples(samples: pl.DataFrame, mapping: MappingSet, source: str = "prometheus") -> pl.DataFrame:
    """Samples → pools frame, one row per (ts, pool, instance) per family."""
    return _kind_frame(samples, mapping, "pools", source)


def _kind_frame(samples: pl.DataFrame, mapping: MappingSet, kind: str, source: str) -> pl.DataFrame:
    schema = BREAKERS if kind == "breakers" else POOLS
    frames = [_family_frame(samples, fam, source, schema) for fam in mapping.of_kind(kind)]
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_frame(kind)
    label = "breaker" if kind == "breakers" else "pool"
    merged = pl.concat(frames, how="vertical")
    return merged.unique(["ts", "source", label, "instance"], keep="first", maintain_order=True).sort(["ts", label, "instance"])


def _family_frame(samples: pl.DataFrame, fam: Family, source: str, schema: pl.Schema) -> pl.DataFrame:
    parts: dict[str, pl.DataFrame] = {}
    for column, spec in fam.fields:
        parts[column] = _field(samples, spec, fam)
    if fam.state is not None:
        parts["state"] = _state(samples, fam)
    parts = {k: v for k, v in parts.items() if v.height}
    full_keys = _key_columns(fam)
    bases = [p.select([TS, INST, *full_keys]) for p in parts.values() if all(k in p.columns for k in full_keys)]
    if not bases:
        return empty_frame("breakers" if "breaker" in schema else "pools")
    out = pl.concat(bases, how="vertical").unique()
    for column, part in parts.items():
        on = [TS, INST, *[k for k in full_keys if k in part.columns]]
        out = out.join(part.select([*on, pl.col("value").alias(column)]), on=on, how="left")
    name = pl.col(KEY) if fam.name_mode == "first" else pl.concat_str([pl.col(k) for k in full_keys], separator="/", ignore_nulls=True)
    label = "breaker" if "breaker" in schema else "pool"
    out = out.with_columns(
        pl.lit(source).alias("source"),
        (pl.lit(fam.name_prefix) + name).alias(label),
        pl.when(pl.col(INST) == "").then(None).otherwise(pl.col(INST)).alias("instance"),
        pl.col(TS).alias("ts"),
    )
    selected = []
    for column, dtype in schema.items():
        if column not in out.columns:
            selected.append(pl.lit(None, dtype=dtype).alias(column))
        elif column in _INT_COLUMNS:
            selected.append(pl.col(column).round().cast(pl.Int64, strict=False).alias(column))
        else:
            selected.append(pl.col(column).cast(dtype).alias(column))
    return out.select(selected)


def _key_columns(fam: Family) -> list[str]:
    return [KEY] if fam.name_mode == "first" else list(fam.name_labels)


def _with_keys(frame: pl.DataFrame, fam: Family) -> tuple[pl.DataFrame, list[str]]:
    """Add INST (and KEY in 'first' mode); return the key columns that are actually populated."""
    inst = [pl.col(c) for c in fam.instance_labels if c in frame.columns]
    frame = frame.with_columns((pl.coalesce(inst) if inst else pl.lit(None, pl.String)).fill_null("").alias(INST))
    if fam.name_mode == "first":
        names = [pl.col(c) for c in fam.name_labels if c in frame.columns]
        frame = frame.with_columns((pl.coalesce(names) if names else pl.lit(None, pl.String)).alias(KEY))
        return frame.filter(pl.col(KEY).is_not_null()), [KEY]
    present = [c for c in fam.name_labels if c in frame.columns and frame.get_column(c).null_count() < frame.height]
    return frame, present


def _select(samples: pl.DataFrame, metrics: tuple[str, ...], match: tuple[tuple[str, str], ...]) -> pl.DataFrame:
    if samples.height == 0 or NAME not in samples.columns:
        return samples.clear()
    frame = samples.filter(pl.col(NAME).is_in(list(metrics)))
    for label, value in match:
        frame = frame.filter(pl.col(label) == value) if label in frame.columns else frame.clear()
    return frame


def _field(samples: pl.DataFrame, spec: FieldSpec, fam: Family) -> pl.DataFrame:
    frame = _select(samples, spec.metrics, spec.match)
    frame = frame.with_columns([pl.col(src).alias(dst) for dst, src in spec.rename if src in frame.columns])
    frame, keys = _with_keys(frame, fam)
    group = [TS, INST, *keys]
    if frame.height == 0:
        return pl.DataFrame(schema={TS: samples.schema.get(TS, pl.Datetime("us", "UTC")), INST: pl.String, "value": pl.Float64})
    rank = pl.DataFrame({NAME: list(spec.metrics), "__prio": list(range(len(spec.metrics)))})
    frame = frame.join(rank, on=NAME, how="left")
    if spec.combine == "first":
        frame = frame.filter(pl.col("__prio") == pl.col("__prio").min().over(group))
    agg = {"sum": pl.col(VALUE).sum(), "max": pl.col(VALUE).max(), "min": pl.col(VALUE).min()}[spec.aggregate]
    out = frame.group_by(group).agg(agg.alias("value"))
    if spec.subtract is not None:
        other = _field(samples, spec.subtract, fam)
        on = [c for c in group if c in other.columns]
        out = out.join(other.rename({"value": "__minus"}).select([*on, "__minus"]), on=on, how="left")
        out = out.with_columns((pl.col("value") - pl.col("__minus")).alias("value")).drop("__minus")
    value = pl.col("value").fill_nan(None) * spec.scale
    if spec.negative_is_null:
        value = pl.when(pl.col("value") < 0).then(None).otherwise(value)
    if spec.zero_is_null:
        value = pl.when(pl.col("value") == 0).then(None).otherwise(value)
    return out.with_columns(value.alias("value"))


def _state(samples: pl.DataFrame, fam: Family) -> pl.DataFrame:
    spec = fam.state
    assert spec is not None
    if spec.open_when_any:
        frame, keys = _with_keys(_select(samples, spec.open_when_any, ()), fam)
        out = frame.group_by([TS, INST, *keys]).agg(pl.col(VALUE).max().alias("__v"))
        return out.with_columns(pl.when(pl.col("__v") >= 1).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("value")).drop("__v")
    frame = _select(samples, (spec.metric or "",), ())
    if spec.label not in frame.columns:
        return frame.clear()
    frame, keys = _with_keys(frame.filter((pl.col(VALUE) >= 0.5) & pl.col(spec.label).is_not_null()), fam)
    mapped = pl.col(spec.label).str.to_lowercase().replace(dict(spec.map))
    state = pl.when(mapped.is_in(BREAKER_STATES)).then(mapped).otherwise(None)
    return frame.group_by([TS, INST, *keys]).agg(state.first().alias("value"))


def events_from_samples(samples: pl.DataFrame, rules: tuple[EventRule, ...], source: str = "prometheus") -> pl.DataFrame:
    """Samples → change events. Metric rules pick their series by name; a `query` rule takes every series given.

    A series is every distinct label set; the trigger compares each sample with the previous one
    of the same series (``increase``: went up, ``change``: differs, ``reset``: went down,
    ``nonzero``: became > 0). The first sample of a series never fires.
    """
    frames = []
    for rule in rules:
        frame = samples if rule.query is not None else _select(samples, rule.metrics, ())
        if frame.height:
            frames.append(_rule_events(frame, rule, source))
    frames = [f for f in frames if f.height]
    return pl.concat(frames).sort("ts") if frames else empty_frame("events")


def _rule_events(frame: pl.DataFrame, rule: EventRule, source: str) -> pl.DataFrame:
    labels = [c for c in frame.columns if c not in (TS, VALUE) and frame.get_column(c).null_count() < frame.height]
    series = pl.concat_str([pl.col(c).fill_null("") for c in labels], separator="\x1f") if labels else pl.lit("")
    frame = frame.with_columns(series.alias("__series")).sort(["__series", TS])
    prev = pl.col(VALUE).shift(1).over("__series")
    fired = {
        "increase": pl.col(VALUE) > prev,
        "change": pl.col(VALUE) != prev,
        "reset": pl.col(VALUE) < prev,
        "nonzero": (pl.col(VALUE) > 0) & (prev.fill_null(0) <= 0),
    }[rule.trigger]
    if rule.trigger != "nonzero":
        fired = fired & prev.is_not_null()
    hits = frame.with_columns(prev.alias("__prev")).filter(fired.fill_null(False))
    if hits.height == 0:
        return empty_frame("events")
    services = [pl.col(c) for c in rule.service_labels if c in hits.columns]
    hits = hits.with_columns(
        (pl.coalesce(services) if services else pl.lit(None, pl.String)).alias("__service"),
    )
    present = [c for c in labels if c in hits.columns]
    attrs = pl.struct(
        pl.lit(rule.name).alias("rule"), pl.lit(source).alias("source"),
        pl.col(VALUE).alias("value"), pl.col("__prev").alias("previous"),
        pl.struct([pl.col(c) for c in present]).alias("labels") if present else pl.lit(None).alias("labels"),
    ).struct.json_encode()
    return hits.select(
        pl.col(TS).alias("ts"), pl.lit(rule.kind).alias("kind"), pl.col("__service").alias("service"),
        _template(rule.description, rule, hits.columns).alias("description"), attrs.alias("attrs"),
    ).cast(EVENTS)


def _template(text: str, rule: EventRule, columns: list[str]) -> pl.Expr:
    """``{service}``, ``{value}``, ``{kind}`` or any ``{label}`` placeholders as one concat_str (unknown → "?")."""
    parts: list[pl.Expr] = []
    for i, piece in enumerate(re.split(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}", text)):
        if i % 2 == 0:
            if piece:
                parts.append(pl.lit(piece))
        elif piece == "service":
            parts.append(pl.col("__service").fill_null("?"))
        elif piece == "value":
            parts.append(pl.col(VALUE).cast(pl.String))
        elif piece == "kind":
            parts.append(pl.lit(rule.kind))
        elif piece in columns:
            parts.append(pl.col(piece).fill_null("?"))
        else:
            parts.append(pl.lit("?"))
    return pl.concat_str(parts) if parts else pl.lit("")

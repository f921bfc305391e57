"""The common data model: one polars schema per frame kind, and its validation."""

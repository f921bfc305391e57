"""Trace sources: search/lookup backends, trace files and the converters into the SPANS frame."""

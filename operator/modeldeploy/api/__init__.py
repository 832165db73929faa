"""PURE API layer: spec and status models, conditions, the CRD, validation."""

"""Gate logic: signatures, expiry by cadence, completeness (pure)."""

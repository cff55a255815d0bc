"""Gate logic (pure): `evaluate` (signatures, expiry by cadence, completeness) and `status`
(a gate's status and its signatures' audit lines)."""

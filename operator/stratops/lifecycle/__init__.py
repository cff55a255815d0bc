"""Pure lifecycle decisions: (spec, status, observations) -> plan. No kopf, no API client."""

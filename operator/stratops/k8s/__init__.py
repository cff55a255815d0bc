"""The only module family that talks to the Kubernetes API server: `executor` (the operator's
ordered, idempotent writes), `monitoring` (the monitor runner), `audit` (the hash-chained
trail), `desk` (what the CLI reads and writes, as its user), `apply` and `client`."""

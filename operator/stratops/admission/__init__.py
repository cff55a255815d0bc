"""Admission: what the API server checks before a write is stored.

- `policies`: ValidatingAdmissionPolicies and MutatingAdmissionPolicies (CEL, inside the API
  server): the checks that need no operator state, so they hold while every operator replica is
  down. Attribution of commands and signatures, frozen checklists, kill-switch settings, the
  recorded author of the trading spec, allow-lists of registries and Prometheus URLs.
- `webhooks`: the configuration of the operator's validating webhooks, for what needs its
  state: signatures and promotion against the gates, signature times against a clock, Secrets
  against the allow-list.
- `review`: the rules those webhooks apply (pure).
"""

"""Pure lifecycle decisions: (spec, status, observations) -> plan. No kopf, no API client.

- `decide`: the Strategy's decision, as PHASES (one function each, strongest first);
- `types`: the views of what is observed, Observations, and the Plan the Executor carries out;
- `commands`: the command annotations' parsing; `control`: the control document and the acks;
- `manifests`: the owned objects; `observe`: views from the objects; `limits`, `halt` (the kill
  path when no decision can be made), `handover` (the warm handover's state machine).
"""

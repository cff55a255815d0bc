"""The chaos soak (issue 22), Jepsen-style: a generator of desk operations and faults
(`generator`), a history of everything done and seen (`history`), and a checker that proves the
desk's invariants over that history afterwards (`checker`). Pure: the driver that runs it on a
local cluster is bench/soak.py."""

"""The controllers, one module per kind (strategy, monitor, gate, incident): each takes what its
handler hands it (a snapshot of kopf's indexes, taken on the event loop: worker threads get only
plain data), decides through the pure packages, writes through stratops.k8s, and says when to be
woken next. No kopf here: the handlers (stratops.handlers) are the only kopf code."""

"""stratops: the production lifecycle of trading strategies on Kubernetes."""

__version__ = "0.1.0"
GROUP = "stratops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: kopf's finalizer on the objects whose handlers need one (settings.persistence.finalizer).
FINALIZER = f"{GROUP}/finalizer"

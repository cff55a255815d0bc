"""The stratops command line (also installed as the kubectl plugin `kubectl stratops`)."""

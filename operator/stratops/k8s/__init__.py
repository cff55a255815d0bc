"""The only module family that talks to the Kubernetes API server."""

"""Tasks: the "Microservices K8s" tutorial's to-do API, kept compatible, as a MyThoughts service."""

__version__ = "0.1.0"

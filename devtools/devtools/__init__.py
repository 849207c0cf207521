"""The MyThoughts developer command line (`python -m devtools --help`)."""

__version__ = "0.1.0"

"""packyard: a self-hosted registry of machine-image metadata that speaks HCP Packer's API."""

__version__ = "0.1.0"

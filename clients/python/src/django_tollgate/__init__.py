"""Let Django views trust tollgate's access tokens. See the README for the settings."""

__version__ = "0.1.0"

"""The business backend's V2 contract."""

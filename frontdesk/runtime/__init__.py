"""What the whole process runs on: settings, profile, logging, metrics, errors."""

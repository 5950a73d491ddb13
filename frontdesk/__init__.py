"""Plain shared modules of Frontdesk: settings, errors, logging, metrics and the like."""

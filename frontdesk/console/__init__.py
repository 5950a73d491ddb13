"""The operator console: Frontdesk's calls, outbox, breakers and businesses, in a browser."""

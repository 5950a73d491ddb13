"""The Twilio edge: webhooks, signatures, the media-stream protocol and REST."""

"""Records of every call, the durable outbox and what delivers them."""

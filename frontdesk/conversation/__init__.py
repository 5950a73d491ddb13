"""The receptionist: what to say and do next, as pure decisions with no I/O."""

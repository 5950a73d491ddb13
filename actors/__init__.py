"""Long-lived actors, one per module, talking only through anyio memory object streams."""

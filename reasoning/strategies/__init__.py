"""One module per strategy; each ``run`` is an async generator of events ending in one final event."""

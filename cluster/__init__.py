"""Ray Serve wiring: config, LLM-server deployment, engine translation."""

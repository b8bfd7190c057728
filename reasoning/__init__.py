"""The reasoning layer: strategies over an LLMClient protocol (no Ray or gRPC imports)."""

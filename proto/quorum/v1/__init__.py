"""Generated protobuf and gRPC code for the quorum.v1 API (see scripts/gen_proto.py)."""

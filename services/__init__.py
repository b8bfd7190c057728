"""The gRPC front door, CLI and client SDK: the only code importing generated protobuf modules."""

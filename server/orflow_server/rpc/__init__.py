"""The gRPC surface: thin servicers, one conversion module, one error mapping."""

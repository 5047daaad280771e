"""The gRPC-web proxy in front of the OR Flow gRPC server, which also serves the built portal."""

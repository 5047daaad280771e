"""OR Flow's FHIR R4 scheduling face at /fhir/r4: another client of the gRPC API, mounted in the proxy app."""

from .routes import BASE_PATH, CORS_EXPOSED_HEADERS, build_fhir_app

__all__ = ["BASE_PATH", "CORS_EXPOSED_HEADERS", "build_fhir_app"]

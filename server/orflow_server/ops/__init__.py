"""Use cases: one async function per operation, each in exactly one transaction."""

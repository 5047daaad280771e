"""The patient tokens dev sign-in issues, in the server's token format.

The format is the server's (orflow_server.security.tokens: `issue_token` writes
it, `TokenVerifier` checks it): an HS256 JWT with exactly the claims
`sub` (the patient id), `role` ("patient"), `iss`, `aud`, `iat` and `exp`
(whole seconds since the epoch). The proxy deploys without the server, so it
writes those claims itself; tests/web/test_token_contract.py fails if what this
module mints is not what `issue_token` mints, or is not taken by the server's
verifier as that patient.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import jwt

PATIENT_ROLE = "patient"  # the only role dev sign-in ever issues


def mint_patient_token(
    secret: str, *, patient_id: str, ttl: timedelta, issuer: str, audience: str, now: datetime
) -> str:
    """An HS256 token that names `patient_id` as a patient, valid for `ttl` from `now`."""
    claims = {
        "sub": patient_id,
        "role": PATIENT_ROLE,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256")

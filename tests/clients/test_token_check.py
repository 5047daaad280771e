"""A client refuses, when it is built, a token that cannot travel as `authorization: Bearer <token>`."""

from __future__ import annotations

import pytest
from orflow_client import BlockingOrFlowClient, InvalidToken, OrFlowClient, OrFlowError, Unauthenticated
from orflow_client._channel import ClientOptions

from ..auth import ADMIN_TOKEN

BAD_TOKENS = {
    "the client README's placeholder": ("…", "'…' (HORIZONTAL ELLIPSIS, U+2026) at position 0"),
    "empty": ("", "the token is empty"),
    "with its scheme": ("Bearer abc.def", "starts with 'Bearer '"),
    "with a space": ("abc def", "' ' (SPACE, U+0020) at position 3"),
    "with the newline of a file read whole": ("abc.def\n", "U+000A) at position 7"),
    "with a non-ASCII letter": ("héllo", "U+00E9) at position 1"),
    "with padding in the middle": ("ab=cd", "'=' at position 2"),
}


@pytest.mark.parametrize("client_class", [OrFlowClient, BlockingOrFlowClient])
@pytest.mark.parametrize(("token", "said"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_token_that_cannot_be_a_bearer_token_is_refused_at_construction(
    client_class: type[OrFlowClient] | type[BlockingOrFlowClient], token: str, said: str
) -> None:
    with pytest.raises(InvalidToken) as refused:
        client_class("127.0.0.1:1", token=token)

    assert isinstance(refused.value, Unauthenticated) and isinstance(refused.value, OrFlowError)
    assert isinstance(refused.value, ValueError)  # a bad argument, for code that catches those
    assert said in refused.value.message
    assert "pass the token itself" in refused.value.message and "token=None" in refused.value.message
    assert refused.value.reason == "TOKEN_MALFORMED"


@pytest.mark.parametrize("token", [ADMIN_TOKEN, "abc==", "a-b_c.d~e+f/g"])
def test_well_formed_tokens_are_taken_and_sent_as_bearer_tokens(token: str) -> None:
    assert ClientOptions("127.0.0.1:1", token=token).metadata() == (("authorization", f"Bearer {token}"),)
    BlockingOrFlowClient("127.0.0.1:1", token=token).close()


def test_no_token_sends_no_authorization() -> None:
    assert ClientOptions("127.0.0.1:1", token=None).metadata() == ()

"""The operator's messages (power, system information, password): round trips and wrong types refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery import protocol
from discovery.protocol import Message, Power, ProtocolError

text = st.text(max_size=30)

OPERATOR_TYPES: set[type[Message]] = {Power}
operator_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Power, action=text),
)


@given(operator_messages)
def test_every_operator_message_round_trips(message: Message) -> None:
    assert protocol.decode(protocol.encode(message)) == message


@pytest.mark.parametrize(
    "line",
    [
        b'{"v":1,"type":"power","action":1}',
        b'{"v":1,"type":"power"}',
    ],
)
def test_wrong_fields_are_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode(line)

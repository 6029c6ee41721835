"""The operator's messages (power, system information, password): round trips and wrong types refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery import protocol
from discovery.protocol import GetSysinfo, Message, Power, ProtocolError, Sysinfo
from discovery.sysinfo import Nic, SystemInfo

text = st.text(max_size=30)

OPERATOR_TYPES: set[type[Message]] = {Power, GetSysinfo, Sysinfo}
operator_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Power, action=text),
    st.just(GetSysinfo()),
    st.builds(
        Sysinfo,
        info=st.builds(
            SystemInfo,
            cpus=st.integers(0, 4096),
            kernel=text,
            nics=st.lists(st.builds(Nic, name=text, carrier=st.none() | st.booleans()), max_size=3).map(tuple),
        ),
    ),
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

"""The operator's messages (power, system information, password): round trips and wrong types refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery import protocol
from discovery.protocol import Authenticate, AuthResult, GetSysinfo, Message, Power, ProtocolError, Sysinfo
from discovery.sysinfo import Nic, SystemInfo

text = st.text(max_size=30)

OPERATOR_TYPES: set[type[Message]] = {Power, GetSysinfo, Sysinfo, Authenticate, AuthResult}
operator_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Power, action=text),
    st.just(GetSysinfo()),
    st.builds(Authenticate, password=text, action=text, console=text),
    st.builds(AuthResult, ok=st.booleans(), action=text, message=text, seconds=st.floats(0, 1e6)),
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
        b'{"v":1,"type":"authenticate","password":123}',
        b'{"v":1,"type":"authenticate","action":"boot"}',
        b'{"v":1,"type":"authenticate","password":"' + b"x" * 2000 + b'"}',
        b'{"v":1,"type":"auth-result","ok":"yes"}',
        b'{"v":1,"type":"auth-result","ok":true,"seconds":"300"}',
    ],
)
def test_wrong_fields_are_a_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode(line)


def test_an_authenticate_message_never_shows_its_password() -> None:
    message = Authenticate("hunter2", "shell", "ttyS0")
    assert "hunter2" not in repr(message)
    assert "hunter2" not in str(message)

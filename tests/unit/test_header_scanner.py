"""The scanner under `WWW-Authenticate` and `Link` (crev/rewrite/header_scanner.py): tokens, quoted
strings that may hold separators and escapes, token68 with its padding, comma-separated lists
with empty elements, and refusals that say where the value went wrong."""

from __future__ import annotations

import pytest

from crev.errors import MalformedHeaderError
from crev.rewrite.header_scanner import Scanner, check_field_value, quote


def test_a_quoted_string_may_hold_separators_and_escapes() -> None:
    scanner = Scanner('  "a, b; c=\\"d\\" \\\\ e" rest')
    assert scanner.quoted_string() == 'a, b; c="d" \\ e'
    assert scanner.token() == "rest"
    assert scanner.at_end()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"open', "expected a closing quote at position 5 of '\"open'"),
        ('"ends with \\', "expected an escaped character at position 12 of '\"ends with \\\\'"),
        ("token", "expected a quoted string at position 0 of 'token'"),
    ],
)
def test_a_broken_quoted_string_is_refused_where_it_breaks(text: str, message: str) -> None:
    with pytest.raises(MalformedHeaderError) as caught:
        Scanner(text).quoted_string()
    assert str(caught.value) == message


def test_a_token_takes_unquoted_urls_whole() -> None:
    scanner = Scanner("realm=https://auth.example:443/token,service")
    assert scanner.token() == "realm"
    assert scanner.take("=")
    assert scanner.value() == "https://auth.example:443/token"
    assert scanner.take(",")
    assert scanner.value() == "service"


def test_a_value_is_a_token_or_a_quoted_string() -> None:
    assert Scanner(' "quoted value"').value() == "quoted value"
    assert Scanner(" bare").value() == "bare"
    with pytest.raises(MalformedHeaderError):
        Scanner(" ,").value()


def test_token68_keeps_its_padding() -> None:
    scanner = Scanner("dXNlcjpwYXNzd29yZA==, next")
    assert scanner.token68() == "dXNlcjpwYXNzd29yZA=="
    assert scanner.take(",")
    assert scanner.token() == "next"


def test_a_parameter_is_told_from_a_token68() -> None:
    assert Scanner('realm="x"').lookahead_is_param() is True
    assert Scanner("realm = x").lookahead_is_param() is True
    assert Scanner("abc==").lookahead_is_param() is False
    assert Scanner("abc=,").lookahead_is_param() is False
    assert Scanner("Bearer").lookahead_is_param() is False
    # Looking ahead moves nothing.
    scanner = Scanner('realm="x"')
    scanner.lookahead_is_param()
    assert scanner.position == 0


def test_empty_list_elements_are_skipped() -> None:
    scanner = Scanner(" , ,a,, b ,")
    assert scanner.at_next_element()
    assert scanner.token() == "a"
    assert scanner.at_next_element()
    assert scanner.token() == "b"
    assert not scanner.at_next_element()


def test_until_reads_to_a_character_and_past_it() -> None:
    scanner = Scanner("</v2/a?n=1>; rel=next")
    assert scanner.take("<")
    assert scanner.until(">") == "/v2/a?n=1"
    assert scanner.take(";")
    with pytest.raises(MalformedHeaderError) as caught:
        Scanner("<unclosed").until(">")
    assert str(caught.value) == "expected '>' at position 0 of '<unclosed'"


def test_quote_escapes_what_a_quoted_string_cannot_hold() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("") == '""'
    assert Scanner(quote('a"b\\c')).quoted_string() == 'a"b\\c'


def test_check_field_value_refuses_control_characters_but_tab() -> None:
    assert check_field_value("ok\tvalue") == "ok\tvalue"
    for value in ("a\nb", "a\rb", "a\x00b", "a\x7fb"):
        with pytest.raises(MalformedHeaderError) as caught:
            check_field_value(value)
        assert str(caught.value) == f"control character in header value {value!r}"

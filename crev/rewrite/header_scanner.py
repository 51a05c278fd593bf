"""A tokenizer for header fields built from parameters: RFC 7235 auth-params and RFC 8288 links.

Both grammars have quoted strings that may hold commas, semicolons, spaces and escaped quotes,
which is why they are read with a scanner rather than split on separators.
"""

from __future__ import annotations

from ..errors import MalformedHeaderError

# RFC 9110 tchar, plus "/" and ":": some registries send unquoted URLs (`realm=https://...`).
_TCHAR = frozenset(
    "!#$%&'*+-.^_`|~/:0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WHITESPACE = " \t"


class Scanner:
    """A cursor over one header value."""

    __slots__ = ("position", "text")

    def __init__(self, text: str, position: int = 0) -> None:
        self.text = text
        self.position = position

    def at_end(self) -> bool:
        return self.position >= len(self.text)

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def skip_whitespace(self) -> None:
        while self.peek() and self.peek() in _WHITESPACE:
            self.position += 1

    def fail(self, expected: str) -> MalformedHeaderError:
        return MalformedHeaderError(
            f"expected {expected} at position {self.position} of {self.text!r}"
        )

    def take(self, char: str) -> bool:
        self.skip_whitespace()
        if self.peek() == char:
            self.position += 1
            return True
        return False

    def token(self) -> str:
        return self._run(_TCHAR, "a token")

    def quoted_string(self) -> str:
        self.skip_whitespace()
        if self.peek() != '"':
            raise self.fail("a quoted string")
        self.position += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail("a closing quote")
            self.position += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                escaped = self.peek()
                if not escaped:
                    raise self.fail("an escaped character")
                self.position += 1
                chars.append(escaped)
            else:
                chars.append(char)

    def value(self) -> str:
        """A parameter value: a token or a quoted string."""
        self.skip_whitespace()
        return self.quoted_string() if self.peek() == '"' else self.token()

    def at_next_element(self) -> bool:
        """Move to the next element of a comma-separated list, past empty elements (RFC 9110
        5.6.1 has them ignored); False at the end of the value."""
        while self.take(","):
            pass
        self.skip_whitespace()
        return not self.at_end()

    def until(self, char: str) -> str:
        start = self.position
        end = self.text.find(char, start)
        if end < 0:
            raise self.fail(repr(char))
        self.position = end + 1
        return self.text[start:end]

    def lookahead_is_param(self) -> bool:
        """Whether the next item is `token = value` (a parameter), not a scheme or a token68
        such as base64 with `=` padding."""
        saved = self.position
        try:
            self.token()
            if not self.take("="):
                return False
            self.skip_whitespace()
            return self.peek() == '"' or self.peek() in _TCHAR
        except MalformedHeaderError:
            return False
        finally:
            self.position = saved

    def token68(self) -> str:
        """RFC 9110 token68: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`."""
        value = self._run(_TOKEN68, "token68")
        padding = self.position
        while self.peek() == "=":
            self.position += 1
        return value + self.text[padding : self.position]

    def _run(self, allowed: frozenset[str], expected: str) -> str:
        """One or more characters of `allowed`, after any whitespace."""
        self.skip_whitespace()
        start = self.position
        while self.peek() and self.peek() in allowed:
            self.position += 1
        if start == self.position:
            raise self.fail(expected)
        return self.text[start : self.position]


def quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def check_field_value(value: str) -> str:
    """Refuse control characters so a rewritten header can never split a response."""
    if any((ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F for char in value):
        raise MalformedHeaderError(f"control character in header value {value!r}")
    return value

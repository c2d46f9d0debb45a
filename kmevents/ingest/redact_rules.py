"""What counts as a secret: key rules for mapping keys, text rules for free text.

**Key rules.** A mapping key is split into words at separators (any character
other than a letter or digit) and at camelCase humps, then lowercased:
``DB_PASS`` -> ``db pass``, ``dbPassword`` -> ``db password``,
``example.com/creds`` -> ``example com creds``, ``APIKey`` -> ``api key``.
The key names a secret when

1. its words joined (``dbpassword``) contain one of ``SECRET_SUBSTRINGS``
   (``password``, ``secret``, ``token``, ``cred``, ``apikey``, ...) anywhere:
   case, separators and prefixes do not matter; or
2. its last word is one of ``SECRET_TAIL_WORDS`` (``pass``, ``pwd``, ``auth``,
   ``bearer``, ...): short words that name a secret at the end of a key
   (``DB_PASS``, ``basic-auth``) but not elsewhere (``auth-url``,
   ``passThrough``);

**unless** its last word is one of ``REFERENCE_WORDS`` (``name``, ``ref``,
``namespace``, ``file``, ``path``, ...): such a key says *which* secret or
*where* it is, not what it holds. ``secretName``, ``passwordSecretRef``,
``tokenSecretName``, ``csi.storage.k8s.io/node-stage-secret-name`` and
``secretFile`` are kept; ``secret_id``, ``secretKey`` and ``tokenSecret`` are not.

**Text rules** (any free text, and every value in a free-form map):

- an assignment to a key the key rules call secret: ``PASSWORD=x``,
  ``password: x``, ``"token":"x"``, ``\\"token\\":\\"x\\"`` (JSON inside a JSON
  string), ``?password=x&...`` in a URL, ``Authorization: Bearer x`` (the scheme
  word is masked with the credential). The value runs to the closing quote or,
  unquoted, to the next blank, quote or ``&``;
- the password of a URL's user information, ``scheme://user:PASS@host``, and of a
  Go SQL DSN, ``user:PASS@tcp(host)``;
- ``Bearer x`` anywhere (tokens of 8 characters or more);
- PEM private-key blocks (``-----BEGIN ... PRIVATE KEY-----`` to its END line,
  or to the end of the text when the END line is missing);
- JSON Web Tokens (three base64url parts, the first ``eyJ``);
- AWS access key ids (``AKIA``/``ASIA`` and 16 more capitals or digits).

Only the secret part is replaced by ``MASK``; the rest of the text is kept.

**Configuration.** ``extra_key_patterns`` add substrings to rule 1 (normalised
the same way: ``db-pass`` matches ``DB_PASS``, ``dbPass``, ``mydbpassword``).
``extra_value_patterns`` are regular expressions searched in free text; the
group named ``secret`` is masked when there is one, else the whole match.
``allow_keys`` are keys (normalised the same way) never treated as secret.

**Limits**, chosen to keep useful data: a tail word glued to what precedes it
is one word and not matched (``dbpass``, ``DBPASS``; else ``bypass`` and
``compass`` would be); add it as an extra key pattern. In text, anything
followed by ``:`` or ``=`` reads as a key, so ``volume "default-token-x9f2k" :
secrets`` masks ``secrets``: a word lost, never a secret kept.

**Speed.** The rules run on every ingested event. Key decisions and "may this
text hold a secret?" decisions are cached (the same keys and most of the same
values recur in every event); the pre-check is a few substring tests
(``KEY_TRIGGERS``, ``SHAPE_TRIGGERS``) on the lowercased text, and the regular
expressions run only on text that passes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, TypeVar

MASK: Final = "[redacted]"

#: Key rule 1: a key whose words, joined, contain one of these names a secret.
SECRET_SUBSTRINGS: Final[tuple[str, ...]] = (
    "password", "passwd", "passphrase", "secret", "token", "cred", "apikey", "privatekey",
    "accesskey", "signingkey", "encryptionkey",
)
#: Key rule 2: a key whose last word is one of these names a secret.
SECRET_TAIL_WORDS: Final[tuple[str, ...]] = ("pass", "pwd", "pw", "auth", "authorization", "bearer")
#: A key whose last word is one of these refers to a secret; it never names one.
REFERENCE_WORDS: Final[tuple[str, ...]] = (
    "name", "names", "ref", "refs", "reference", "namespace", "file", "path",
)
#: The pre-check (on the text lowercased, blanks and ``_ . -`` removed): an assignment
#: needs ``=`` or ``:`` and one of ``KEY_TRIGGERS`` (each secret key contains one);
#: every other default text rule needs one of ``SHAPE_TRIGGERS``. Tested.
KEY_TRIGGERS: Final[tuple[str, ...]] = (
    "pass", "pw", "auth", "bearer", "secret", "token", "cred", "apikey", "privatekey", "accesskey",
    "signingkey", "encryptionkey",
)
SHAPE_TRIGGERS: Final[tuple[str, ...]] = ("@", "bearer", "privatekey", "eyj", "akia", "asia")

#: Words of a key: runs of capitals (``API`` in ``APIKey``), capitalised or
#: lowercase words, digit runs; anything else separates them.
_WORD: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: Dropped before the substring pre-check: keys in text may be split by ``_ . -``, and a
#: PEM block says ``PRIVATE KEY``.
_DROP_SEPARATORS: Final = str.maketrans("", "", "_.- \t")

#: A key (``PASSWORD``, ``"token"``, ``--password``) and its ``=`` or ``:``; the value after it
#: is read by ``_VALUE``. A key starts only where a run of key characters starts and
#: its run is matched possessively, so a long text is scanned once, not once per character.
_ASSIGN: Final = re.compile(
    r"(?<![A-Za-z0-9_.\-])(?P<key>-*[A-Za-z_][A-Za-z0-9_.\-]*+)\\?[\"']?[ \t]*+[:=][ \t]*+"
)
_VALUE: Final = re.compile(
    r"""\\"(?P<a>(?:[^"\\]|\\[^"])*)\\"        # \"JSON string inside a JSON string\"
      | "(?P<b>(?:[^"\\]|\\.)*)"                # "JSON string"
      | '(?P<c>[^']*)'                          # 'quoted'
      | (?P<d>(?:(?:bearer|basic|digest|token|negotiate|ntlm)[ \t]+)?[^\s"'&]+)  # bare, maybe behind a scheme
    """,
    re.VERBOSE | re.IGNORECASE,
)
_URL_PASSWORD: Final = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*+://[^\s/@:\"']*:(?P<secret>[^\s/@\"']+)@"
    r"|(?<![^\s\"'=(])[A-Za-z0-9_.%+\-]+:(?P<dsn>[^\s/@\"']+)@(?:tcp|unix)\("
)
_BEARER: Final = re.compile(r"(?i)\bbearer[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)")
_PEM: Final = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?P<secret>.*?)"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_JWT: Final = re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")
_AWS_KEY_ID: Final = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")

#: Key kinds (``SecretRules.key_kind``).
PLAIN: Final = 0
SECRET: Final = 1
LEAKY: Final = 2
"""The key itself contains a secret (a text rule matches it): the whole entry goes."""

_T = TypeVar("_T")
_CACHE_MAX: Final = 65_536
_CACHE_TEXT_MAX_LEN: Final = 256


def key_words(key: str) -> list[str]:
    """``"example.com/dbPassword"`` -> ``["example", "com", "db", "password"]``."""
    return [w.lower() for w in _WORD.findall(key)]


def normalise(pattern: str) -> str:
    """A key pattern as the rules compare it: its words, lowercased, joined."""
    return "".join(key_words(pattern))


class SecretRules:
    """The key and text rules, compiled once; decisions cached per key and per text."""

    def __init__(self, *, extra_key_patterns: Iterable[str] = (), extra_value_patterns: Iterable[str] = (),
                 allow_keys: Iterable[str] = ()) -> None:
        extra = []
        for p in extra_key_patterns:
            n = normalise(p)
            if not n:
                raise ValueError(f"key pattern {p!r} has no letters or digits; it would match every key")
            extra.append(n)
        self.substrings: tuple[str, ...] = SECRET_SUBSTRINGS + tuple(extra)
        self.tail_words: frozenset[str] = frozenset(SECRET_TAIL_WORDS)
        self.reference_words: frozenset[str] = frozenset(REFERENCE_WORDS)
        self.allow_keys: frozenset[str] = frozenset(normalise(k) for k in allow_keys)
        self.value_patterns: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in extra_value_patterns)
        self.key_triggers: tuple[str, ...] = KEY_TRIGGERS + tuple(
            n for n in extra if not any(t in n for t in KEY_TRIGGERS))
        self._secret_keys: dict[str, bool] = {}
        self._key_kinds: dict[str, int] = {}
        self._texts: dict[str, bool] = {}

    # ---- keys ----

    def is_secret_key(self, key: str) -> bool:
        """Key rules 1 and 2 minus references and allowed keys (cached)."""
        hit = self._secret_keys.get(key)
        if hit is None:
            words = key_words(key)
            joined = "".join(words)
            hit = _remember(self._secret_keys, key, bool(words) and words[-1] not in self.reference_words
                            and joined not in self.allow_keys
                            and (any(s in joined for s in self.substrings) or words[-1] in self.tail_words))
        return hit

    def key_kind(self, key: str) -> int:
        """``PLAIN``, ``SECRET`` (its value goes) or ``LEAKY`` (the key itself holds a secret)."""
        kind = self._key_kinds.get(key)
        if kind is None:
            leaky = self.may_hold(key) and self.mask_text(key) != key
            kind = _remember(self._key_kinds, key, LEAKY if leaky else SECRET if self.is_secret_key(key) else PLAIN)
        return kind

    # ---- text ----

    def may_hold(self, text: str) -> bool:
        """False when no text rule can match ``text`` (cached for short texts)."""
        hit = self._texts.get(text)
        if hit is None:
            low = text.lower().translate(_DROP_SEPARATORS)
            hit = (("=" in text or ":" in text) and any(t in low for t in self.key_triggers)) or any(
                t in low for t in SHAPE_TRIGGERS) or any(p.search(text) for p in self.value_patterns)
            if len(text) <= _CACHE_TEXT_MAX_LEN:
                _remember(self._texts, text, hit)
        return hit

    def mask_text(self, text: str) -> str:
        """``text`` with every secret the text rules find replaced by ``MASK``
        (the same object when nothing was found)."""
        spans: list[tuple[int, int]] = []
        if "=" in text or ":" in text:
            covered = -1  # keys inside a value already masked are not read again (linear time)
            for m in _ASSIGN.finditer(text):
                if m.start() < covered or not self.is_secret_key(m.group("key")):
                    continue
                value = _VALUE.match(text, m.end())
                if value is not None and value.lastgroup is not None:
                    spans.append(value.span(value.lastgroup))
                    covered = spans[-1][1]
            if "@" in text:
                for m in _URL_PASSWORD.finditer(text):
                    spans.append(m.span("secret") if m.group("secret") is not None else m.span("dsn"))
        if "earer" in text or "EARER" in text:
            spans.extend(m.span("secret") for m in _BEARER.finditer(text))
        if "PRIVATE KEY" in text:
            spans.extend(m.span("secret") for m in _PEM.finditer(text))
        if "eyJ" in text:
            spans.extend(m.span() for m in _JWT.finditer(text))
        if "AKIA" in text or "ASIA" in text:
            spans.extend(m.span() for m in _AWS_KEY_ID.finditer(text))
        for p in self.value_patterns:
            spans.extend(m.span("secret") if "secret" in p.groupindex else m.span() for m in p.finditer(text))
        return _replace(text, spans)


def _remember(cache: dict[str, _T], key: str, value: _T) -> _T:
    """Cache ``value`` under ``key``; a full cache starts again (keys and texts recur, so it refills)."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each (merged) non-empty span replaced by ``MASK``."""
    spans = sorted(s for s in spans if s[1] > s[0])
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    end = -1
    for start, stop in spans:
        if start <= end:  # overlaps the span being built: extend it
            end = max(end, stop)
            continue
        if end >= 0:
            out.append(MASK)
            pos = end
        out.append(text[pos:start])
        pos, end = start, stop
    out.append(MASK)
    out.append(text[end:])
    return "".join(out)

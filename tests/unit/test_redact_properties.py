"""Generated secret placements: whatever valid event carries a secret, under whatever
secret-naming key at whatever depth, or in whatever secret syntax inside free text,
the bytes ingest writes do not contain it, and every non-secret planted beside it
survives.

Each example draws a canonical event (``tests.strategies``), finds its free-form
places (``redact_places``: maps, volume sources, ``message``/``reason`` text),
plants one unique secret marker and several unique keep markers, and runs the
ingest path without I/O (``Ingestor.prepare``: validate, redact, encode), with
``event_id`` and ``dedupe_key`` left to be derived (``master.error`` derives its
key from the message).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents.contract import EVENT_TYPES, SCHEMA_VERSIONS
from kmevents.ingest import Ingestor
from kmevents.ingest.redact_places import FREE, TEXT, places_for
from kmevents.ingest.redact_rules import SECRET_SUBSTRINGS, SECRET_TAIL_WORDS
from kmevents.settings import Settings
from tests.strategies import Draw, event_of_type

INGEST = Ingestor(Settings())
TYPES = tuple(t for t in EVENT_TYPES if places_for(t, SCHEMA_VERSIONS[t]))

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Secret markers: unique, mixed case (bare values, quoted values, URL passwords...).
secret_markers = st.text(ALNUM, min_size=12, max_size=24).map(lambda s: f"Zq{s}9")
#: Keep markers: lowercase and digits only, so no text rule can see a secret shape in them.
keep_markers = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=10, max_size=16).map(lambda s: f"keep{s}")

#: Surface forms of the secret words, as words (``apikey`` is written ``api key``).
SUBSTRING_WORDS = [w.replace("key", " key").split() if w.endswith("key") and w != "key" else [w]
                   for w in SECRET_SUBSTRINGS] + [["credentials"], ["creds"], ["passwords"]]
TAIL_WORDS = [[w] for w in SECRET_TAIL_WORDS]
PREFIXES = [[], ["db"], ["mysql", "root"], ["aws"], ["x"], ["app", "v2"]]
SUFFIXES = [[], ["value"], ["b64"], ["id"], ["prod"], ["v2"]]
REFERENCE_SUFFIXES = [["name"], ["ref"], ["secret", "name"], ["ref", "name"], ["file"], ["path"], ["namespace"]]
PLAIN_KEYS = ["app", "tier", "zone", "team", "owner", "config", "server", "mode", "k8s.mesosphere.io/taskId",
              "kubernetes.io/created-by", "serviceAccountName", "secretName", "tokenSecretName", "passwordSecretRef"]
KEY_PREFIXES = ["", "example.com/", "app.kubernetes.io/", "vault.example.com/"]


def join(words: list[str], style: str) -> str:
    """Words as a key in one of the spellings real keys use."""
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "upper":
        return "_".join(words).upper()
    return style.join(words)


@st.composite
def secret_keys(draw: Draw) -> str:
    """A key naming a secret: any prefix, a secret word, any case and separators."""
    tail = draw(st.booleans())
    words = draw(st.sampled_from(TAIL_WORDS if tail else SUBSTRING_WORDS))
    # a tail word names a secret only at the end, and only as a word of its own
    suffix = [] if tail else draw(st.sampled_from(SUFFIXES))
    styles = ["_", "-", ".", "camel", "upper"] if tail else ["_", "-", ".", "", "camel", "upper"]
    return draw(st.sampled_from(KEY_PREFIXES)) + join([*draw(st.sampled_from(PREFIXES)), *words, *suffix],
                                                      draw(st.sampled_from(styles)))


@st.composite
def plain_keys(draw: Draw) -> str:
    """A key that is no secret: a plain word, or one that names or locates a secret."""
    if draw(st.booleans()):
        return draw(st.sampled_from(PLAIN_KEYS))
    words = [*draw(st.sampled_from(SUBSTRING_WORDS + TAIL_WORDS)), *draw(st.sampled_from(REFERENCE_SUFFIXES))]
    return join(words, draw(st.sampled_from(["_", "-", ".", "camel", "upper"])))


def text_keys() -> st.SearchStrategy[str]:
    return secret_keys().filter(lambda k: "/" not in k)


@st.composite
def secret_texts(draw: Draw) -> tuple[str, str]:
    """(text, marker): a secret in one of the syntaxes free text carries it in."""
    m = draw(secret_markers)
    k = draw(text_keys())
    forms = [
        f"{k}={m}", f"{k}: {m}", f'{{"{k}":"{m}","user":"bob"}}', f'{{"{k}": "{m}"}}', f"{{\\\"{k}\\\":\\\"{m}\\\"}}",
        f"'{k}': '{m}'", f"https://api.local/v1?user=bob&{k}={m}&page=2", f"--{k}={m}",
        f"Authorization: Bearer {m}", f"Proxy-Authorization: Basic {m}", f"bearer {m}",
        f"postgres://admin:{m}@db.local:5432/app", f"app:{m}@tcp(10.0.0.1:3306)/db",
        f"-----BEGIN RSA PRIVATE KEY-----\n{m}\n-----END RSA PRIVATE KEY-----",
        f"-----BEGIN PRIVATE KEY-----\n{m}",
        f"eyJhbGciOiJIUzI1NiJ9.{m}.c2ln",
    ]
    text = draw(st.sampled_from(forms))
    if draw(st.integers(0, len(forms))) == 0:  # an AWS access key id: its 16 characters are the marker
        m = "ZQ" + draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=14, max_size=14))
        text = f"AKIA{m}"
    return text, m


def nested(draw: Draw, value: Any, key: str) -> dict[str, Any]:
    """``{key: value}`` wrapped in 0-3 dicts and lists under plain keys."""
    node: Any = {key: value}
    for _ in range(draw(st.integers(0, 3))):
        node = [node] if draw(st.booleans()) else {draw(plain_keys()): node}
    return node if isinstance(node, dict) else {draw(plain_keys()): node}


def slots(node: Any, places: Any, out: dict[str, list[tuple[Any, Any, bool]]], key: Any = None) -> None:
    """(container, key, nestable) of each text and free-form place present in ``node``."""
    if places == TEXT:
        out["text"].append((node, key, False))
        return
    value = node[key] if key is not None else node
    if places == FREE:
        if type(value) is dict:
            out["free"].append((value, None, key == "source"))
        return
    for seg, sub in places.items():
        if seg == "*":
            for i in range(len(value) if type(value) is list else 0):
                slots(value, sub, out, i)
        elif type(value) is dict and (sub == TEXT or value.get(seg) is not None):
            slots(value, sub, out, seg)


@st.composite
def planted_events(draw: Draw) -> tuple[dict[str, Any], str, list[str]]:
    """(producer event, secret marker, keep markers)."""
    event = draw(st.sampled_from(TYPES).flatmap(event_of_type))
    event = copy.deepcopy(event)
    del event["event_id"], event["dedupe_key"]
    payload = event["payload"]
    if event["type"] == "pod.upserted":  # room for a nested volume source and a termination reason
        payload["pod"]["volumes"].append({"name": "planted", "kind": draw(st.sampled_from(["csi", "flexVolume", "x"])),
                                          "source": {"driver": "x.csi.example.com"}})
        for c in payload["pod"]["containers"]:
            c["last_termination"] = c["last_termination"] or {"reason": None, "exit_code": 1}
    found: dict[str, list[tuple[Any, Any, bool]]] = {"text": [], "free": []}
    slots(payload, places_for(event["type"], event["schema_version"]), found)
    keeps: list[str] = []

    # the secret: under a secret key in a free-form map, or in free text (a text field or a map value)
    if found["free"] and draw(st.booleans()):
        container, _, nestable = draw(st.sampled_from(found["free"]))
        marker = draw(secret_markers)
        value: Any = marker
        if nestable and draw(st.booleans()):  # a secret-named key whose value is a structure
            value = draw(st.sampled_from([{"user": "u", "pass": marker}, [marker], {"a": [{"b": marker}]}]))
        planted = nested(draw, value, draw(secret_keys())) if nestable else {draw(secret_keys()): marker}
        container.update(planted)
    else:
        text, marker = draw(secret_texts())
        keep = draw(keep_markers)
        keeps.append(keep)
        text = f"note {keep} then {text} end"
        if found["text"] and (not found["free"] or draw(st.booleans())):
            container, key, _ = draw(st.sampled_from(found["text"]))
            container[key] = text
        else:
            container, _, nestable = draw(st.sampled_from(found["free"]))
            container.update(nested(draw, text, draw(plain_keys())) if nestable else {draw(plain_keys()): text})

    # non-secrets beside it: a plain-keyed map value, prose and a secret *reference* in the other texts
    for container, _, nestable in found["free"]:
        keep = draw(keep_markers)
        beside = nested(draw, keep, draw(plain_keys())) if nestable else {draw(plain_keys()): keep}
        if not beside.keys() & container.keys():  # never over what was planted before
            container.update(beside)
            keeps.append(keep)
    for container, key, _ in found["text"]:
        if container.get(key) is None or marker not in str(container.get(key)):
            keep = draw(keep_markers)
            keeps.append(keep)
            container[key] = draw(st.sampled_from([f"failed: {keep}", f"secretName: {keep}",
                                                   f"PASSWORD_FILE=/run/secrets/{keep}", f"tokenSecretRef={keep}"]))
    return event, marker, keeps


@settings(max_examples=400, deadline=None)
@given(planted_events())
def test_a_planted_secret_never_reaches_the_log_and_planted_non_secrets_all_do(
        case: tuple[dict[str, Any], str, list[str]]) -> None:
    event, marker, keeps = case
    res, data, _ = INGEST.prepare(0, event)
    assert data is not None, res.errors
    assert marker.encode() not in data
    assert res.redacted, "a secret was planted: something must be listed as redacted"
    for keep in keeps:
        assert keep.encode() in data, keep

"""Redaction: what the defaults remove and keep, the key and text rules, where they look,
and issue 14's planted secrets through the ingest path (validate, redact, encode)."""

from __future__ import annotations

import time
import typing

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from kmevents.contract import derive_event_id
from kmevents.contract.registry import SPEC_BY_VERSION
from kmevents.ingest import Ingestor
from kmevents.ingest.redact import MASK, Redactor, Rule, _split, render
from kmevents.ingest.redact_places import FREE, IDENTIFIER_FIELDS, TEXT, places_for, places_of
from kmevents.ingest.redact_rules import (
    KEY_TRIGGERS,
    LEAKY,
    PLAIN,
    SECRET,
    SECRET_SUBSTRINGS,
    SECRET_TAIL_WORDS,
    SecretRules,
    normalise,
)
from kmevents.settings import RedactSettings, Settings
from tests.unit.redact_cases import KEPT, KEPT_VALUES, PLANTED


def test_task_data_is_dropped_and_marked() -> None:
    ev = {"type": "task.launched", "payload": {"task": {"data": "eyJlbnYiOi4uLn0=", "name": "web"}}}
    assert Redactor()(ev) == ["task.data"]
    assert ev["payload"]["task"] == {"data": None, "name": "web"}
    assert ev["redacted"] == ["payload.task.data"]


def test_secret_named_labels_are_masked_at_any_depth_and_others_kept() -> None:
    ev = {"type": "pod.upserted", "payload": {"pod": {"labels": {"app": "db", "root-password": "x"},
                                                      "annotations": {"vault-token": "t", "k8s.mesosphere.io/taskId": "pod.1"}}}}
    removed = Redactor()(ev)
    pod = ev["payload"]["pod"]
    assert pod["labels"] == {"app": "db", "root-password": MASK}
    assert pod["annotations"] == {"vault-token": MASK, "k8s.mesosphere.io/taskId": "pod.1"}
    assert sorted(removed) == ["pod.annotations.vault-token", "pod.labels.root-password"]


def test_last_applied_configuration_annotation_is_removed_whole() -> None:
    key = "kubectl.kubernetes.io/last-applied-configuration"
    ev = {"type": "pod.upserted", "payload": {"pod": {"annotations": {key: '{"env":"s3cret"}'}}}}
    Redactor()(ev)
    assert key not in ev["payload"]["pod"]["annotations"]
    assert ev["redacted"] == [f"payload.pod.annotations[{key}]"]


def test_secret_assignments_in_messages_are_masked() -> None:
    ev = {"type": "k8s_event.recorded", "payload": {"message": "bad env MYSQL_ROOT_PASSWORD=s3cret HOME=/root"}}
    Redactor()(ev)
    assert ev["payload"]["message"] == f"bad env MYSQL_ROOT_PASSWORD={MASK} HOME=/root"


def test_allow_rule_exempts_a_path_and_nothing_is_marked_when_nothing_is_removed() -> None:
    ev = {"type": "task.launched", "payload": {"task": {"data": "keep-me"}}}
    assert Redactor(allow=[Rule("task.launched", "task.data")])(ev) == []
    assert ev["payload"]["task"]["data"] == "keep-me" and "redacted" not in ev
    clean = {"type": "task.launched", "payload": {"task": {"data": None}}}
    assert Redactor()(clean) == [] and "redacted" not in clean


def test_credentials_inline_in_volume_sources_are_masked_and_references_to_secrets_kept() -> None:
    """Issue 16: a ``secretRef``/``secretName`` names a Kubernetes Secret; it is not one."""
    ev = {"type": "pod.upserted", "payload": {"pod": {"volumes": [
        {"name": "data", "kind": "flexVolume", "source": {"driver": "x/cifs", "options": {"password": "p4ss", "user": "u"}}},
        {"name": "ceph", "kind": "rbd", "source": {"monitors": ["10.0.0.1:6789"], "secretRef": {"name": "ceph-key"},
                                                    "keyring": "/etc/ceph/keyring"}},
        {"name": "default-token-x9f2k", "kind": "secret", "source": {"secretName": "default-token-x9f2k"}}]}}}
    assert Redactor()(ev) == ["pod.volumes.0.source.options.password"]
    vols = ev["payload"]["pod"]["volumes"]
    assert vols[0]["source"]["options"] == {"password": MASK, "user": "u"}
    assert vols[1]["source"] == {"monitors": ["10.0.0.1:6789"], "secretRef": {"name": "ceph-key"},
                                 "keyring": "/etc/ceph/keyring"}
    assert vols[2]["source"] == {"secretName": "default-token-x9f2k"}


def test_direct_lookup_finds_what_the_general_walk_finds() -> None:
    """Paths without ``*`` skip the general walk (``_find``); both must select the same places."""
    from hypothesis import given, settings

    from kmevents.ingest.redact import DEFAULT_RULES, _find, _split, _walk, render
    from tests.strategies import events

    direct = [_split(r.path) for r in DEFAULT_RULES if "*" not in _split(r.path)]
    odd = [{}, {"task": None}, {"task": []}, {"status": {"labels": None}}, {"pod": {"annotations": []}}]

    @settings(max_examples=200, deadline=None)
    @given(events())
    def check(event: dict) -> None:
        for payload in (event["payload"], *odd):
            for segs in direct:
                assert list(_find(payload, segs, render(segs))) == _walk(payload, segs)

    check()


# ---- the ingest path (validate, redact, encode) against planted secrets ----


def ingest_bytes(event: dict, settings: Settings | None = None) -> tuple[bytes, list[str]]:
    """What ingest would write for ``event`` (no I/O: ``Ingestor.prepare``), and its redacted paths."""
    res, data, _ = Ingestor(settings or Settings()).prepare(0, event)
    assert data is not None, res.errors
    return data, res.redacted


@pytest.mark.parametrize(("name", "event", "marker", "path"), PLANTED, ids=[c[0] for c in PLANTED])
def test_a_planted_secret_is_not_written_and_its_path_is_listed(name: str, event: dict, marker: str, path: str) -> None:
    data, redacted = ingest_bytes(event)
    assert marker.encode() not in data
    assert f"payload.{path}" if path[0] != "[" else f"payload{path}" in redacted
    assert redacted == orjson.loads(data)["redacted"]


def test_references_to_secrets_ids_and_names_are_kept_and_nothing_is_marked() -> None:
    for event in KEPT:
        data, redacted = ingest_bytes(event)
        assert redacted == []
        for value in KEPT_VALUES:
            assert value.encode() in data, value


def test_a_masked_message_masks_the_dedupe_key_built_from_it_and_the_derived_id_follows() -> None:
    """``master.error`` keys duplicates by its message: the key (and the id hashed from it)
    must not keep what the message lost."""
    event = next(e for n, e, _, _ in PLANTED if e["type"] == "master.error")
    marker = next(m for n, e, m, _ in PLANTED if e["type"] == "master.error")
    data, _ = ingest_bytes(event)
    stored = orjson.loads(data)
    assert marker not in stored["dedupe_key"] and MASK in stored["dedupe_key"]
    assert stored["event_id"] == derive_event_id(stored["cluster"], stored["dedupe_key"])
    given = dict(event, event_id="producer-id-1")
    assert orjson.loads(ingest_bytes(given)[0])["event_id"] == "producer-id-1"


# ---- key rules ----

SECRET_KEYS = ["DB_PASS", "db-pass", "dbPassword", "example.com/creds", "x-api-key", "secret_token", "credentials",
               "private_key", "auth", "bearer", "Authorization", "MYSQL_ROOT_PASSWORD", "aws_secret_access_key",
               "APIKey", "secret_id", "secretKey", "tokenSecret", "vault-token", "PWD", "db.pw", "passphrase",
               "GIT_CREDS", "basic-auth", "X-Auth-Token", "signing_key", "oauth2Token"]
PLAIN_KEYS = ["secretName", "passwordSecretRef", "tokenSecretName", "serviceAccountName", "secretKeyRef",
              "csi.storage.k8s.io/node-stage-secret-name", "csi.storage.k8s.io/provisioner-secret-namespace",
              "secretFile", "tokenPath", "k8s.mesosphere.io/taskId", "k8s.mesosphere.io/bindingHost",
              "kubernetes.io/created-by", "kubernetes.io/config.hash", "app", "tier", "auth-url", "passThrough",
              "bypass", "keyring", "monitors", "chapAuthDiscovery", "compass", "author"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_keys_that_name_a_secret_whatever_their_case_separators_and_prefix(key: str) -> None:
    assert SecretRules().key_kind(key) == SECRET


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_keys_that_name_or_locate_a_secret_or_nothing_secret_are_kept(key: str) -> None:
    assert SecretRules().key_kind(key) == PLAIN


def test_a_key_that_itself_holds_a_secret_is_removed_with_the_secret_masked_in_its_path() -> None:
    rules = SecretRules()
    assert rules.key_kind("--db-password=hunter2") == LEAKY
    ev = {"type": "pod.upserted", "schema_version": 1, "payload": {"pod": {"labels": {"app": "x"}, "volumes": [
        {"name": "v", "kind": "flexVolume", "source": {"options": {"--db-password=hunter2": "", "ro": "true"}}}]}}}
    assert Redactor()(ev) == [f"pod.volumes.0.source.options[--db-password={MASK}]"]
    assert ev["payload"]["pod"]["volumes"][0]["source"]["options"] == {"ro": "true"}


def test_extra_key_patterns_and_allowed_keys_from_settings() -> None:
    settings = Settings(redact=RedactSettings(extra_key_patterns=["db-conn", "sig"], allow_keys=["vault_token"]))
    ev = {"type": "pod.upserted", "schema_version": 1, "payload": {"pod": {"labels": {
        "DB_CONN": "a", "prod.dbConnString": "b", "webhook-sig": "c", "vault-token": "d", "app": "e"}}}}
    removed = Redactor.from_settings(settings.redact)(ev)
    assert sorted(removed) == ["pod.labels.DB_CONN", "pod.labels.webhook-sig", "pod.labels[prod.dbConnString]"]
    assert Ingestor(settings).redactor.secrets.key_kind("my-db-conn") == SECRET


def test_extra_settings_come_from_kmevents_redact_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEVENTS_REDACT__EXTRA_KEY_PATTERNS", '["db-conn"]')
    monkeypatch.setenv("KMEVENTS_REDACT__EXTRA_VALUE_PATTERNS", r'["sk_live_(?P<secret>\\w+)"]')
    rules = Ingestor(Settings()).redactor.secrets
    assert rules.key_kind("DB_CONN") == SECRET
    assert rules.mask_text("key sk_live_abc123 used") == f"key sk_live_{MASK} used"


def test_a_value_pattern_that_is_not_a_regular_expression_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="KMEVENTS_REDACT__EXTRA_VALUE_PATTERNS"):
        RedactSettings(extra_value_patterns=["(unclosed"])
    with pytest.raises(ValueError, match="no letters or digits"):
        SecretRules(extra_key_patterns=["--"])


def test_every_secret_word_contains_a_key_trigger_so_the_pre_check_never_hides_one() -> None:
    for word in (*SECRET_SUBSTRINGS, *SECRET_TAIL_WORDS, *SecretRules(extra_key_patterns=["db-conn"]).substrings):
        assert any(t in normalise(word) for t in
                   SecretRules(extra_key_patterns=["db-conn"]).key_triggers), word
    assert all(t == normalise(t) or t == "@" for t in KEY_TRIGGERS)


# ---- text rules ----

TEXTS = [
    ("bad env MYSQL_ROOT_PASSWORD=s3cret HOME=/root", f"bad env MYSQL_ROOT_PASSWORD={MASK} HOME=/root"),
    ("password: hunter2 (too short)", f"password: {MASK} (too short)"),
    ('{"token":"abc","user":"bob"}', f'{{"token":"{MASK}","user":"bob"}}'),
    ('{"token": 12345}', f'{{"token": {MASK}'),
    ('log {\\"token\\":\\"abc\\"} end', f'log {{\\"token\\":\\"{MASK}\\"}} end'),
    ("'secret': 'x y'", f"'secret': '{MASK}'"),
    ("GET /api?user=u&password=hunter2&x=1", f"GET /api?user=u&password={MASK}&x=1"),
    ("Authorization: Bearer abc.def", f"Authorization: {MASK}"),
    ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: {MASK}"),
    ("curl -H 'X-Api-Key: k123'", f"curl -H 'X-Api-Key: {MASK}'"),
    ("run --db-password=hunter2 --user=x", f"run --db-password={MASK} --user=x"),
    ("postgres://admin:hunter2@db:5432/app", f"postgres://admin:{MASK}@db:5432/app"),
    ("dsn user:hunter2@tcp(127.0.0.1:3306)/db", f"dsn user:{MASK}@tcp(127.0.0.1:3306)/db"),
    ("sent bearer abcdefgh12345", f"sent bearer {MASK}"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY----- ok",
     f"-----BEGIN RSA PRIVATE KEY-----{MASK}-----END RSA PRIVATE KEY----- ok"),
    ("key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz (cut)", f"key: -----BEGIN OPENSSH PRIVATE KEY-----{MASK}"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_x ok", f"jwt {MASK} ok"),
    ("id AKIAIOSFODNN7EXAMPLE used", f"id {MASK} used"),
    ("PASSWORD=a PASSWORD=b", f"PASSWORD={MASK} PASSWORD={MASK}"),
]
TEXTS_KEPT = [
    "The node was low on resource: memory.",
    'MountVolume.SetUp failed for volume "kubernetes.io/secret/0b5e-default-token-x9f2k" (spec.Name: '
    '"default-token-x9f2k") pod "0b5e" (UID: "0b5e") with: secrets "default-token-x9f2k" not found',
    "secretName: default-token-x9f2k",
    "image nginx:1.9@sha256:0a1b2c",
    "Failed for reason PodExceedsFreeCPU and possibly others",
    "bearer of bad news",
    "contact: ops@example.com",
    "Container exited with status 137",
    "eyJraW5kIjoiUG9kIn0=",
    "https://registry.local:5000/v2/",
]


@pytest.mark.parametrize(("text", "masked"), TEXTS)
def test_secrets_in_free_text_are_masked_and_the_rest_kept(text: str, masked: str) -> None:
    rules = SecretRules()
    assert rules.may_hold(text)
    assert rules.mask_text(text) == masked


@pytest.mark.parametrize("text", TEXTS_KEPT)
def test_free_text_without_secrets_is_unchanged(text: str) -> None:
    rules = SecretRules()
    assert rules.mask_text(text) is text


def test_the_text_rules_take_linear_time_on_hostile_input() -> None:
    """A 1 MiB event is allowed: the rules must not backtrack once per character."""
    rules = SecretRules()
    for text in ("a-" * 100_000 + "password=", "password=" * 20_000, "x://" + "a:" * 100_000 + "@",
                 "eyJ" + "a" * 200_000, "-" * 100_000 + "password"):
        start = time.perf_counter()
        rules.mask_text(text)
        assert time.perf_counter() - start < 2.0, text[:20]


def test_a_deeply_nested_volume_source_is_redacted_without_recursion() -> None:
    deep: dict = {"password": "x"}
    for _ in range(5000):
        deep = {"n": [deep]}
    ev = {"type": "pod.upserted", "schema_version": 1, "payload": {"pod": {"volumes": [
        {"name": "v", "kind": "odd", "source": deep}]}}}
    (path,) = Redactor()(ev)
    assert path.endswith(".n.0.password") and path.count(".n.0") == 5000


def test_an_allow_rule_exempts_a_secret_rules_finding_by_path() -> None:
    key = "vault.hashicorp.com/agent-inject-token"
    ev = {"type": "pod.upserted", "schema_version": 1, "payload": {"pod": {
        "annotations": {key: "true", "db-pass": "x"}, "volumes": [{"name": "v", "kind": "k", "source": {"token": "t"}}]}}}
    red = Redactor(allow=[Rule("pod.*", f"pod.annotations[{key}]"), Rule("pod.upserted", "pod.volumes.*.source.token")])
    assert red(ev) == ["pod.annotations.db-pass"]
    assert ev["payload"]["pod"]["annotations"][key] == "true"
    assert ev["payload"]["pod"]["volumes"][0]["source"] == {"token": "t"}


def test_redacted_paths_are_unambiguous_and_parse_back_into_rule_paths() -> None:
    for path in (("pod", "annotations", "kubectl.kubernetes.io/last-applied-configuration"),
                 ("pod", "volumes", 0, "source", "volumeAttributes", "password"), ("status", "message")):
        assert _split(render(path)) == [str(p) for p in path]
    assert render(("pod", "labels", "a.b")) != render(("pod", "labels", "a", "b"))


# ---- where the secret rules look: derived from the contract ----


def test_every_string_field_of_the_contract_is_classified_text_or_identifier() -> None:
    """A new string field must be put in ``IDENTIFIER_FIELDS`` or be free text on purpose."""
    text_fields: set[str] = set()
    names: set[str] = set()

    def leaves(places: object) -> None:
        if isinstance(places, dict):
            for name, sub in places.items():
                if sub == TEXT:
                    text_fields.add(name)
                leaves(sub)

    def field_names(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            names.add(name)
            for arg in (field.annotation, *typing.get_args(field.annotation)):
                for inner in (arg, *typing.get_args(arg)):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        field_names(inner)

    for spec in SPEC_BY_VERSION.values():
        leaves(places_of(spec.payload))
        field_names(spec.payload)
    assert text_fields == {"message", "reason"}
    assert not IDENTIFIER_FIELDS - names, "an identifier listed that the contract no longer has"
    # no contract field is a secret-looking key: the key rules only ever see free-form keys
    rules = SecretRules()
    assert [n for n in names if rules.key_kind(n) != PLAIN] == []


def test_the_places_of_a_pod_are_its_maps_volume_sources_and_termination_reasons() -> None:
    assert places_for("pod.upserted", 1) == {"pod": {
        "labels": FREE, "annotations": FREE, "volumes": {"*": {"source": FREE}},
        "containers": {"*": {"last_termination": {"reason": TEXT}}}}}
    assert places_for("offer.offered", 1) == {}
    assert places_for("future.type", 1) == FREE

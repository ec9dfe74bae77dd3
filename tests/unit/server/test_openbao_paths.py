"""The `secretPath` rules and OpenBao names: pure functions, no server."""

from __future__ import annotations

import posixpath
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kupe.server.openbao import InvalidSecretPath, OpenBaoError, validate_secret_path
from kupe.server.openbao.paths import (
    MAX_SECRET_PATH_LENGTH,
    SECRET_PATH_CHARACTERS,
    kv_data_path,
    mount_name,
    reader_policy_name,
    secret_path_problem,
    writer_policy_name,
)
from kupe.server.openbao.policies import control_policy, reader_policy, writer_policy

segment_chars = st.sampled_from(sorted(SECRET_PATH_CHARACTERS))
segments = st.text(segment_chars, min_size=1, max_size=20).filter(lambda s: s not in {".", ".."})
valid_paths = st.lists(segments, min_size=1, max_size=8).map("/".join)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "empty"),
        ("a" * (MAX_SECRET_PATH_LENGTH + 1), f"at most {MAX_SECRET_PATH_LENGTH}"),
        ("..", "'..' segment"),
        ("../kupe-other/data/x", "'..' segment"),
        ("a/../../kupe-other", "'..' segment"),
        ("a/..", "'..' segment"),
        ("./a", "'.' segment"),
        ("/db/creds", "absolute"),
        ("/", "absolute"),
        ("db//creds", "empty segment ('//') at position 2"),
        ("db/", "ends with '/'"),
        ("db\\creds", "backslash at position 2"),
        ("..\\kupe-other", "backslash"),
        ("db/\x00", "control character (U+0000) at position 3"),
        ("db\ncreds", "control character (U+000A)"),
        ("db\x7f", "control character (U+007F)"),
        ("db\x85", "control character (U+0085)"),
        ("%2e%2e/x", "'%' (U+0025) at position 0"),
        ("db?version=1", "'?'"),
        ("db#x", "'#'"),
        ("db creds", "' ' (U+0020)"),
        ("db*", "'*'"),
        ("caf\u00e9", "'\u00e9' (U+00E9)"),
        ("a\u202eb", "non-printable character (U+202E)"),
        ("\uff0e\uff0e/x", "U+FF0E"),
    ],
)
def test_rejected_paths_name_their_problem(path: str, problem: str) -> None:
    found = secret_path_problem(path)
    assert found is not None
    assert problem in found
    with pytest.raises(InvalidSecretPath) as refused:
        validate_secret_path(path)
    assert refused.value.problem == found
    assert str(refused.value) == f"invalid secretPath: {found}"
    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, OpenBaoError)
    assert refused.value.transient is False


@pytest.mark.parametrize(
    "path",
    ["db", "team/db/prod", "a.b", ".env", "..a", "a..", "x_y-z~1@2+3=4,5:6", "a" * 512],
)
def test_accepted_paths(path: str) -> None:
    assert secret_path_problem(path) is None
    assert validate_secret_path(path) == path


@given(valid_paths)
def test_valid_paths_stay_inside_the_mount(path: str) -> None:
    assert validate_secret_path(path) == path
    api = kv_data_path("kupe-acme", path)
    assert api == f"kupe-acme/data/{path}"
    # Whatever a server does with dot segments, an accepted path cannot leave the mount.
    assert posixpath.normpath(api).startswith("kupe-acme/data/")
    assert posixpath.normpath(api) == api


@given(valid_paths, valid_paths, st.sampled_from(["..", "."]))
def test_any_dot_segment_is_refused(before: str, after: str, dots: str) -> None:
    for path in (f"{dots}/{after}", f"{before}/{dots}", f"{before}/{dots}/{after}"):
        with pytest.raises(InvalidSecretPath, match=f"'{dots}' segment"):
            validate_secret_path(path)


outside = st.characters().filter(lambda c: c not in SECRET_PATH_CHARACTERS and c != "/")


@given(valid_paths, outside, st.data())
def test_a_character_outside_the_allowlist_is_refused(
    path: str, char: str, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(path)))
    assert secret_path_problem(path[:index] + char + path[index:]) is not None


@given(st.text(alphabet=string.printable + "\u00e9\u202e\uff0e", max_size=40))
def test_a_path_is_either_valid_or_refused_with_a_reason(path: str) -> None:
    problem = secret_path_problem(path)
    if problem is None:
        assert not path.startswith("/")
        assert ".." not in path.split("/")
        assert "\\" not in path
        assert posixpath.normpath(f"m/data/{path}") == f"m/data/{path}"
    else:
        with pytest.raises(InvalidSecretPath):
            validate_secret_path(path)


def test_kv_data_path_refuses_what_validation_refuses() -> None:
    with pytest.raises(InvalidSecretPath):
        kv_data_path("kupe-acme", "../kupe-other/data/x")


def test_tenant_names_and_prefixes() -> None:
    assert mount_name("acme") == "kupe-acme"
    assert mount_name("acme", "bao-") == "bao-acme"
    assert reader_policy_name("acme") == "kupe-acme-read"
    assert writer_policy_name("acme") == "kupe-acme-write"
    for tenant in ("", "A", "acme/x", "../x", "a" * 64, "-acme"):
        with pytest.raises(ValueError, match="tenant"):
            mount_name(tenant)
    for prefix in ("", "Kupe-", "kupe/", "1kupe-"):
        with pytest.raises(ValueError, match="prefix"):
            mount_name("acme", prefix)


def test_policies_name_only_their_own_mount() -> None:
    for text in (reader_policy("kupe-acme"), writer_policy("kupe-acme")):
        paths = [line for line in text.splitlines() if line.startswith("path ")]
        assert paths
        assert all(line.startswith('path "kupe-acme/') for line in paths)
    assert "update" not in reader_policy("kupe-acme")
    control = control_policy()
    # Kupe's own policy manages mounts, policies and tokens but never touches a value.
    assert "/data/" not in control
    assert 'path "sys/mounts/kupe-*"' in control

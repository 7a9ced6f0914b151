"""An image's configuration plus ``create``'s arguments give what the container runs, by the rules
a Docker user relies on: references, users and groups, entrypoint and command, env, working
directory, stop signal."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from fsm.errors import ConfigError
from fsm.images.process import container_process, stop_signal_number
from fsm.images.reference import ImageReference, candidates, parse_reference
from fsm.images.users import ProcessUser, parse_group, parse_passwd, resolve_user

DIGEST = "sha256:" + "ab" * 32

# ---------------------------------------------------------------- references

REFERENCES = [
    ("busybox", None, "busybox", "latest", None, "busybox:latest"),
    ("busybox:1.36", None, "busybox", "1.36", None, "busybox:1.36"),
    ("library/busybox", None, "library/busybox", "latest", None, "library/busybox:latest"),
    ("127.0.0.1:5000/test", "127.0.0.1:5000", "test", "latest", None,
     "127.0.0.1:5000/test:latest"),
    ("localhost/x", "localhost", "x", "latest", None, "localhost/x:latest"),
    ("localhost:5000/a/b/c:v1", "localhost:5000", "a/b/c", "v1", None,
     "localhost:5000/a/b/c:v1"),
    ("quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0", None,
     "quay.io/coreos/etcd:v3.5.0"),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None, "[::1]:5000/x:latest"),
    ("Registry/x", "Registry", "x", "latest", None, "Registry/x:latest"),
    ("my_org/some__app--x.y", None, "my_org/some__app--x.y", "latest", None,
     "my_org/some__app--x.y:latest"),
    ("busybox:Latest_1.x-y", None, "busybox", "Latest_1.x-y", None, "busybox:Latest_1.x-y"),
    (f"busybox@{DIGEST}", None, "busybox", None, DIGEST, f"busybox@{DIGEST}"),
    (f"host.example:443/busybox:1.36@{DIGEST}", "host.example:443", "busybox", "1.36", DIGEST,
     f"host.example:443/busybox@{DIGEST}"),
    ("docker.io/library/busybox", None, "busybox", "latest", None, "busybox:latest"),
    ("docker.io/busybox:1", None, "busybox", "1", None, "busybox:1"),
    ("index.docker.io/someone/tool", None, "someone/tool", "latest", None,
     "someone/tool:latest"),
    ("docker.io/library/a/b", None, "library/a/b", "latest", None, "library/a/b:latest"),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "canonical"),
                         REFERENCES, ids=[r[0][:40] for r in REFERENCES])
def test_reference_parses_and_names_like_docker(text: str, registry: str | None, repository: str,
                                                tag: str | None, digest: str | None,
                                                canonical: str) -> None:
    reference = parse_reference(text)
    assert reference == ImageReference(registry, repository, tag, digest)
    assert str(reference) == canonical
    assert parse_reference(canonical) == ImageReference(registry, repository,
                                                        None if digest else tag, digest)


def test_transport_ref_is_what_skopeo_takes_one_tag_or_one_digest() -> None:
    assert parse_reference("127.0.0.1:5000/test").transport_ref() == "127.0.0.1:5000/test:latest"
    # containers-image refuses a reference with both a tag and a digest
    assert parse_reference(f"r.io/x:1@{DIGEST}").transport_ref() == f"r.io/x@{DIGEST}"


BAD_REFERENCES = [
    "",
    "Busybox",
    "busybox:",
    "busybox:-tag",
    "busybox:.tag",
    "busybox:" + "t" * 129,
    "busy box",
    "/busybox",
    "busybox/",
    "a//b",
    "a/.b",
    "a_-b",
    "a___b",
    "host:port/x",
    "-host.io/x",
    "busybox@sha256:abc",
    "busybox@sha256:" + "AB" * 32,
    "busybox@md5:" + "ab" * 16,
    "ab" * 32,
    "x/" * 127 + "abc",
]


@pytest.mark.parametrize("text", BAD_REFERENCES, ids=[t[:30] for t in BAD_REFERENCES])
def test_bad_reference_names_the_field_and_the_value(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text, field="image")
    assert caught.value.field == "image"
    assert caught.value.value == text
    assert str(caught.value).startswith(f"image={text!r} is not valid: ")


def test_longest_name_is_accepted_and_one_more_is_not() -> None:
    name = "a/" * 127 + "a"
    assert len(name) == 255
    assert parse_reference(name).repository == name
    with pytest.raises(ConfigError, match="at most 255"):
        parse_reference(name + "b")


def test_a_64_hex_name_is_refused_because_it_is_an_id() -> None:
    with pytest.raises(ConfigError, match="image id"):
        parse_reference("0123456789abcdef" * 4)
    assert parse_reference("r.io/" + "0123456789abcdef" * 4).registry == "r.io"


CANDIDATES = [
    ("busybox", ["busybox:latest", "busybox"]),
    ("busybox:latest", ["busybox:latest", "busybox"]),
    ("busybox:1.36", ["busybox:1.36"]),
    ("docker.io/library/busybox", ["busybox:latest", "docker.io/library/busybox", "busybox"]),
    ("localhost/x", ["localhost/x:latest", "localhost/x"]),
    ("x", ["x:latest", "x"]),
    (f"busybox@{DIGEST}", [f"busybox@{DIGEST}"]),
    ("tool_", ["tool_"]),
]


@pytest.mark.parametrize(("text", "names"), CANDIDATES, ids=[c[0][:30] for c in CANDIDATES])
def test_candidates_are_the_canonical_name_then_legacy_names(text: str, names: list[str]) -> None:
    assert candidates(text) == names


def test_candidates_refuse_what_is_neither_a_reference_nor_a_legacy_name() -> None:
    with pytest.raises(ConfigError):
        candidates("Not An Image")


# ---------------------------------------------------------------- users

PASSWD = """\
# the image's /etc/passwd
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

broken line
short:x:5
bad:x:notanumber:1::/:/bin/sh
app:x:1000:1000:App:/home/app:/bin/sh
  spaced:x:1001:1001::/home/spaced:/bin/sh
root:x:77:77:second root:/nowhere:/bin/sh
"""

GROUP = """\
root:x:0:root
daemon:x:1:root,daemon
# comment
wheel:x:10:root, app
app:x:1000:
staff:x:50:app,other
gidless:x:
staff2:x:50:app
"""

USERS = [
    ("", ProcessUser(0, 0, (0, 1, 10), "root", "/root")),
    ("root", ProcessUser(0, 0, (0, 1, 10), "root", "/root")),
    ("0", ProcessUser(0, 0, (0, 1, 10), "root", "/root")),
    ("app", ProcessUser(1000, 1000, (10, 50), "app", "/home/app")),
    ("1000", ProcessUser(1000, 1000, (10, 50), "app", "/home/app")),
    ("app:staff", ProcessUser(1000, 50, (), "app", "/home/app")),
    ("app:4242", ProcessUser(1000, 4242, (), "app", "/home/app")),
    ("1000:staff", ProcessUser(1000, 50, (), "app", "/home/app")),
    ("4242", ProcessUser(4242, 0, (), "", "/")),
    ("4242:4343", ProcessUser(4242, 4343, (), "", "/")),
    ("4242:daemon", ProcessUser(4242, 1, (), "", "/")),
    (":daemon", ProcessUser(0, 1, (), "root", "/root")),
    ("spaced", ProcessUser(1001, 1001, (), "spaced", "/home/spaced")),
    (str(2**32 - 2), ProcessUser(2**32 - 2, 0, (), "", "/")),
]


@pytest.mark.parametrize(("spec", "expected"), USERS, ids=[u[0] or "empty" for u in USERS])
def test_user_resolves_by_runc_rules(spec: str, expected: ProcessUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == expected


def test_a_numeric_uid_is_never_read_as_a_name() -> None:
    passwd = "1000:x:5:5::/:/bin/sh\n"
    assert resolve_user("1000", passwd, "") == ProcessUser(1000, 0, (), "", "/")


def test_an_image_without_passwd_or_group_takes_numbers_only() -> None:
    assert resolve_user("", "", "") == ProcessUser(0, 0, (), "", "/")
    assert resolve_user("33:33", "", "") == ProcessUser(33, 33, (), "", "/")
    with pytest.raises(ConfigError, match="/etc/passwd"):
        resolve_user("www-data", "", "")


BAD_USERS = [
    ("nobody", "'nobody' is not in it"),
    ("bad", "'bad' is not in it"),
    ("app:nogroup", "'nogroup' is not in it"),
    ("app:staff:extra", "NAME:GROUP"),
    (" app", "NAME:GROUP"),
    ("app\x00", "NAME:GROUP"),
    (str(2**32 - 1), "from 0 to 4294967294"),
    ("1:" + str(2**32 - 1), "from 0 to 4294967294"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_USERS, ids=[u[0] for u in BAD_USERS])
def test_bad_user_names_the_field_the_spec_and_why(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_user(spec, PASSWD, GROUP)
    assert caught.value.field == "user"
    assert caught.value.value == spec
    assert message in str(caught.value)


def test_passwd_and_group_lines_that_cannot_be_read_are_skipped() -> None:
    assert [e.name for e in parse_passwd(PASSWD)] == ["root", "daemon", "app", "spaced", "root"]
    assert [(e.name, e.gid, e.members) for e in parse_group(GROUP)][2:4] == [
        ("wheel", 10, ("root", "app")), ("app", 1000, ())]
    assert "gidless" not in [e.name for e in parse_group(GROUP)]


# ---------------------------------------------------------------- process

NGINX: dict[str, Any] = {
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Env": ["PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25", "EMPTY=", "A=b=c"],
    "WorkingDir": "/srv",
    "User": "101",
    "StopSignal": "SIGQUIT",
    "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
    "Labels": {"maintainer": "someone"},
}
SHELL: dict[str, Any] = {"Cmd": ["/bin/sh"], "Entrypoint": None, "Env": None}


def _process(image: dict[str, Any], **given: Any) -> Any:
    arguments: dict[str, Any] = {"command": None, "entrypoint": None, "env": None,
                                 "working_dir": None, "user": None}
    return container_process(image, **{**arguments, **given})


ARGV = [
    # (image, command, entrypoint, argv)
    (NGINX, None, None, ("/docker-entrypoint.sh", "nginx", "-g", "daemon off;")),
    (NGINX, ["nginx", "-T"], None, ("/docker-entrypoint.sh", "nginx", "-T")),
    (NGINX, [], None, ("/docker-entrypoint.sh", "nginx", "-g", "daemon off;")),
    (NGINX, None, "/bin/sh", ("/bin/sh",)),
    (NGINX, None, ["/bin/sh", "-c"], ("/bin/sh", "-c")),
    (NGINX, ["echo hi"], ["/bin/sh", "-c"], ("/bin/sh", "-c", "echo hi")),
    (NGINX, ["id"], "", ("id",)),
    (NGINX, ["id"], [], ("id",)),
    (NGINX, ["id"], [""], ("id",)),
    (NGINX, None, "/usr/bin/my tool", ("/usr/bin/my tool",)),
    (SHELL, None, None, ("/bin/sh",)),
    (SHELL, ["ls", "-l"], None, ("ls", "-l")),
    ({"Entrypoint": [""], "Cmd": ["top"]}, None, None, ("top",)),
    ({"Entrypoint": ["tini", "--"]}, None, None, ("tini", "--")),
    ({"Entrypoint": ["tini", "--"]}, ["app"], None, ("tini", "--", "app")),
    ({}, ["true"], None, ("true",)),
]


@pytest.mark.parametrize(("image", "command", "entrypoint", "argv"), ARGV,
                         ids=[f"{i}-{a[3][0]}" for i, a in enumerate(ARGV)])
def test_argv_is_entrypoint_then_cmd_by_dockers_rules(
        image: dict[str, Any], command: list[str] | None, entrypoint: Any,
        argv: tuple[str, ...]) -> None:
    assert _process(image, command=command, entrypoint=entrypoint).args == argv


NO_COMMAND = [
    ({}, None, None, "neither Entrypoint nor Cmd"),
    ({"Entrypoint": None, "Cmd": None}, [], None, "neither Entrypoint nor Cmd"),
    ({"Entrypoint": [""]}, None, None, "neither Entrypoint nor Cmd"),
    (NGINX, None, "", "the entrypoint given is empty"),
    (NGINX, None, [], "the entrypoint given is empty"),
]


@pytest.mark.parametrize(("image", "command", "entrypoint", "message"), NO_COMMAND)
def test_nothing_to_run_is_a_config_error_on_command(
        image: dict[str, Any], command: list[str] | None, entrypoint: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _process(image, command=command, entrypoint=entrypoint)
    assert caught.value.field == "command"
    assert caught.value.value == command
    assert message in str(caught.value)


BAD_ARGUMENTS = [
    ({"command": "echo hi"}, "command"),
    ({"command": ["echo", 3]}, "command"),
    ({"command": ["", "x"]}, "command"),
    ({"entrypoint": ["sh\x00"]}, "entrypoint"),
    ({"entrypoint": ["", "-c"]}, "entrypoint"),
    ({"entrypoint": 7}, "entrypoint"),
    ({"env": {"1BAD": "x"}}, "env"),
    ({"env": {"GOOD": 1}}, "env['GOOD']"),
    ({"working_dir": "relative"}, "working_dir"),
    ({"working_dir": "/a/../b"}, "working_dir"),
    ({"user": "a:b:c"}, "user"),
    ({"user": 1000}, "user"),
]


@pytest.mark.parametrize(("given", "field"), BAD_ARGUMENTS,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_ARGUMENTS)])
def test_bad_argument_names_its_field_and_value(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _process(NGINX, **given)
    assert caught.value.field == field
    assert repr(caught.value.value) in str(caught.value)


BAD_IMAGES = [
    ({"Cmd": "nginx -g"}, "image config Cmd"),
    ({"Cmd": ["nginx", None]}, "image config Cmd"),
    ({"Entrypoint": "/entry.sh"}, "image config Entrypoint"),
    ({"Cmd": ["x"], "Env": "A=1"}, "image config Env"),
    ({"Cmd": ["x"], "Env": [1]}, "image config Env"),
    ({"Cmd": ["x"], "WorkingDir": "srv"}, "image config WorkingDir"),
    ({"Cmd": ["x"], "User": 0}, "image config User"),
    ({"Cmd": ["x"], "StopSignal": "SIGNOPE"}, "image config StopSignal"),
    ({"Cmd": ["x"], "ExposedPorts": ["80/tcp"]}, "image config ExposedPorts"),
    ({"Cmd": ["x"], "ExposedPorts": {"80/xdp": {}}}, "exposed_ports"),
    ({"Cmd": ["x"], "Labels": {"a": 1}}, "image config Labels"),
]


@pytest.mark.parametrize(("image", "field"), BAD_IMAGES,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_IMAGES)])
def test_a_malformed_image_config_is_named_not_trusted(image: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _process(image)
    assert caught.value.field == field


def test_env_is_the_images_then_the_containers_which_win_per_name_in_place() -> None:
    env = _process(NGINX, env={"NGINX_VERSION": "1.27", "EXTRA": "1"}).env
    assert list(env.items()) == [("PATH", "/usr/local/sbin:/usr/bin"), ("NGINX_VERSION", "1.27"),
                                 ("EMPTY", ""), ("A", "b=c"), ("EXTRA", "1")]


def test_image_env_entries_without_a_value_are_skipped_and_later_ones_win() -> None:
    image = {"Cmd": ["x"], "Env": ["JUSTNAME", "=nameless", "A=1", "dotted.name=ok", "A=2"]}
    assert _process(image).env == {"A": "2", "dotted.name": "ok"}


@pytest.mark.parametrize(("image_dir", "given", "expected"), [
    ("/srv", None, "/srv"),
    ("/srv", "", "/srv"),
    ("/srv", "/data/", "/data"),
    (None, None, "/"),
    ("", None, "/"),
    ("/srv//x/", None, "/srv/x"),
])
def test_working_dir_is_given_else_the_images_else_root(
        image_dir: str | None, given: str | None, expected: str) -> None:
    image = {"Cmd": ["x"], "WorkingDir": image_dir}
    assert _process(image, working_dir=given).working_dir == expected


@pytest.mark.parametrize(("image_user", "given", "expected"), [
    ("101", None, "101"),
    ("101", "", "101"),
    ("101", "app:staff", "app:staff"),
    (None, None, ""),
])
def test_user_is_given_else_the_images_else_root(
        image_user: str | None, given: str | None, expected: str) -> None:
    assert _process({"Cmd": ["x"], "User": image_user}, user=given).user_spec == expected


def test_stop_signal_ports_and_labels_come_from_the_image() -> None:
    process = _process(NGINX)
    assert process.stop_signal == signal.SIGQUIT
    assert process.exposed_ports == ("80/tcp", "53/udp")
    assert process.labels == {"maintainer": "someone"}
    bare = _process({"Cmd": ["x"], "StopSignal": None, "ExposedPorts": None, "Labels": None})
    assert (bare.stop_signal, bare.exposed_ports, bare.labels) == (signal.SIGTERM, (), {})
    assert _process({"Cmd": ["x"], "StopSignal": ""}).stop_signal == signal.SIGTERM


@pytest.mark.parametrize(("value", "number"), [
    ("SIGTERM", signal.SIGTERM),
    ("TERM", signal.SIGTERM),
    ("sigterm", signal.SIGTERM),
    ("15", 15),
    (9, 9),
    ("SIGKILL", signal.SIGKILL),
    ("SIGUSR1", signal.SIGUSR1),
    ("SIGRTMIN+3", signal.SIGRTMIN + 3),
    ("RTMAX-1", signal.SIGRTMAX - 1),
    ("SIGRTMIN", signal.SIGRTMIN),
])
def test_stop_signal_by_name_or_number(value: object, number: int) -> None:
    assert stop_signal_number(value) == number


@pytest.mark.parametrize("value", ["", "0", "-15", "999", "SIGNOPE", "SIG", "RTMIN+x",
                                   "SIGRTMAX+1", "TERM ", True, None, 15.0])
def test_bad_stop_signal_names_field_and_value(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        stop_signal_number(value)
    assert caught.value.field == "stop_signal"
    assert caught.value.value == value
    assert "SIGTERM, TERM, 15" in str(caught.value)

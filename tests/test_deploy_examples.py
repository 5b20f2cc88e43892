"""examples/deploy: the Dockerfile and the Kubernetes manifests do what the
README's deployment sections say, and every wsgiserver option they name
exists in the real command line parser. No Docker engine is needed: the
Dockerfile is read, and its command run outside a container on 127.0.0.1."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import wsgiref.util
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from wsgiserver.cli import build_parser, read_settings
from wsgiserver.settings import server_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "examples" / "deploy"
README_SECTIONS = ("Containers", "Kubernetes", "Scaling past one machine")
GUIDE = ("Dockerfile", "kubernetes.yaml", *(f"README {title}" for title in README_SECTIONS))
# Options of other programs that these texts name, with the program.
OTHER_PROGRAMS = {"--rm": "docker run", "--stop-timeout": "docker run", "--init": "docker run"}
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# Instructions whose flags are Docker's or a shell command's, not wsgiserver's.
NOT_THE_SERVERS = ("RUN", "HEALTHCHECK", "COPY", "ADD")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def read_dockerfile(text: str) -> list[Instruction]:
    """The instructions in order. As the Dockerfile reference has it (default
    escape character): a line ending in a backslash continues on the next,
    and comment lines are dropped, also in the middle of a continuation."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the last instruction ends in a backslash"
    return instructions


def exec_form(arguments: str) -> list[str] | None:
    """The JSON array of an exec-form instruction; None for the shell form."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def only(instructions: list[Instruction], keyword: str) -> str:
    found = [item.arguments for item in instructions if item.keyword == keyword]
    assert len(found) == 1, f"{keyword} appears {len(found)} times"
    return found[0]


def unknown_options(text: str) -> set[str]:
    """The ``--options`` in ``text`` that neither wsgiserver nor a program
    listed in OTHER_PROGRAMS has."""
    known = {name for action in build_parser()._actions for name in action.option_strings}
    return set(OPTION.findall(text)) - known - set(OTHER_PROGRAMS)


def readme_section(title: str) -> str:
    """The text under ``### title`` up to the next heading of level 2 or 3."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^##+ )", text, re.S | re.M)
    assert found, f"README has no section {title!r}"
    return found[1]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return read_dockerfile((DEPLOY / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    with open(DEPLOY / "kubernetes.yaml") as stream:
        documents = [document for document in yaml.safe_load_all(stream) if document]
    return {document["kind"]: document for document in documents}


@pytest.fixture(scope="module")
def container(manifests) -> dict:
    (only_container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only_container


def image_command(dockerfile: list[Instruction]) -> list[str]:
    """ENTRYPOINT + CMD: the image's command line."""
    entrypoint = exec_form(only(dockerfile, "ENTRYPOINT"))
    command = exec_form(only(dockerfile, "CMD"))
    assert entrypoint is not None and command is not None, "shell form"
    return entrypoint + command


def image_environment(dockerfile: list[Instruction]) -> dict[str, str]:
    """The variables the image's ENV instructions set (KEY=VALUE form)."""
    found: dict[str, str] = {}
    for item in dockerfile:
        if item.keyword == "ENV":
            for word in shlex.split(item.arguments):
                key, equals, value = word.partition("=")
                assert equals, f"ENV {word}: only the KEY=VALUE form is read here"
                found[key] = value
    return found


def server_environment(dockerfile: list[Instruction]) -> dict[str, str]:
    return {key: value for key, value in image_environment(dockerfile).items()
            if key.startswith("WSGISERVER_")}


def image_uid(dockerfile: list[Instruction]) -> int:
    user = only(dockerfile, "USER").split(":")[0]
    assert user.isdigit(), "a numeric USER: runAsNonRoot cannot verify a name"
    return int(user)


def app_answers(path: str) -> str:
    """The status examples/deploy/app.py answers GET ``path`` with."""
    spec = importlib.util.spec_from_file_location("deploy_app", DEPLOY / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    wsgiref.util.setup_testing_defaults(environ)
    statuses: list[str] = []
    result = module.app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(result)
    getattr(result, "close", lambda: None)()
    return statuses[0]


# The Dockerfile reader itself.


def test_reader_joins_continuations_drops_comments_and_tells_the_two_forms_apart():
    instructions = read_dockerfile(
        "# a comment\nFROM python:3.12-slim\nRUN one \\\n# inside\n    && two\n"
        'CMD wsgiserver app:app\nENTRYPOINT ["wsgiserver", "app:app"]\n')
    assert [item.keyword for item in instructions] == ["FROM", "RUN", "CMD", "ENTRYPOINT"]
    assert instructions[1].arguments == "one && two"
    assert exec_form(instructions[2].arguments) is None
    assert exec_form(instructions[3].arguments) == ["wsgiserver", "app:app"]


def test_option_check_catches_a_misspelled_option():
    assert unknown_options("--shutdown-timeout 30 --shutdown-timout 30") == {"--shutdown-timout"}


# The Dockerfile.


def test_image_is_a_slim_python(dockerfile):
    assert re.fullmatch(r"python:3\.\d+-slim(@sha256:[0-9a-f]{64})?", only(dockerfile, "FROM"))


def test_image_command_is_exec_form_with_sigterm_as_stop_signal(dockerfile):
    assert image_command(dockerfile)[0] == "wsgiserver"
    assert only(dockerfile, "STOPSIGNAL") == "SIGTERM"


def test_image_runs_as_a_numeric_user_that_is_not_root(dockerfile):
    assert only(dockerfile, "USER").split(":")[0] not in ("root", "0")
    assert image_uid(dockerfile) > 0


def test_image_command_parses_and_binds_every_interface_on_the_exposed_port(dockerfile):
    config = config_of(image_command(dockerfile)[1:], server_environment(dockerfile))
    assert config.binds == (f"0.0.0.0:{only(dockerfile, 'EXPOSE')}",)


def test_arguments_to_docker_run_add_to_the_images_settings(dockerfile):
    # docker run IMAGE --workers 4: the arguments replace CMD; the app, the
    # bind and the rest come from the image's variables and stay.
    assert image_command(dockerfile) == ["wsgiserver"]
    environment = server_environment(dockerfile)
    settings, _ = read_settings(["--workers", "4"], environ=environment)
    config = server_config(settings)
    assert settings["app"].value == "app:app" and config.workers == 4
    assert config.binds == (f"0.0.0.0:{only(dockerfile, 'EXPOSE')}",)
    assert config.shutdown_timeout == 30 and config.access_log == "-"
    moved = dict(environment, WSGISERVER_BIND="0.0.0.0:9000")
    assert config_of([], moved).binds == ("0.0.0.0:9000",)


def test_healthcheck_is_python_in_exec_form_on_a_route_the_app_answers(dockerfile):
    flags, _, command = only(dockerfile, "HEALTHCHECK").partition(" CMD ")
    program = exec_form(command)
    assert program is not None and program[0] == "python"
    # It follows the configured port: read from WSGISERVER_BIND.
    assert "os.environ['WSGISERVER_BIND']" in program[-1]
    url = re.search(r"http://127\.0\.0\.1:\{port\}(/\S*?)'", program[-1])
    assert url
    assert app_answers(url[1]) == "200 OK"


def test_every_copied_file_exists_and_passes_the_ignore_file(dockerfile):
    # Simpler than Docker's matching: some "!pattern" must let the source in.
    ignore_file = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    let_through = [line[1:].strip() for line in ignore_file if line.startswith("!")]
    copies = [[word for word in item.arguments.split() if not word.startswith("--")]
              for item in dockerfile if item.keyword == "COPY"]
    sources = [source for *sources, _ in copies for source in sources]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert any(fnmatch.fnmatch(source, pattern) for pattern in let_through), (
            f"COPY {source}: the ignore file keeps it out of the build context")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_image_command_serves_its_health_check_and_stops_on_sigterm(dockerfile, tmp_path):
    # What the container would run, outside one: loopback and a free port.
    port = str(free_port())
    shutil.copy(DEPLOY / "app.py", tmp_path / "app.py")
    command = image_command(dockerfile)[1:]
    check = [sys.executable if arg == "python" else arg
             for arg in exec_form(only(dockerfile, "HEALTHCHECK").partition(" CMD ")[2])]
    # urllib would send even 127.0.0.1 to a proxy named in the environment.
    # The image's variables, with the port moved (the health check follows).
    environment = {name: value for name, value in os.environ.items()
                   if not name.lower().endswith("_proxy") and not name.startswith("WSGISERVER_")}
    environment.update(server_environment(dockerfile), WSGISERVER_BIND=f"127.0.0.1:{port}")
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "wsgiserver", *command],
                                  cwd=tmp_path, stdout=log, stderr=log, env=environment)
        try:
            deadline = time.monotonic() + 15
            while subprocess.run(check, capture_output=True, env=environment).returncode:
                assert server.poll() is None and time.monotonic() < deadline, (
                    (tmp_path / "server.log").read_text())
                time.sleep(0.1)
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=10) == 0
        finally:
            server.kill()
            server.wait()


# The Kubernetes manifests.


def test_service_selects_the_deployments_pods_on_the_container_port(manifests, container):
    deployment, service = manifests["Deployment"], manifests["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def config_of(arguments: list[str], environ: dict[str, str] | None = None):
    """The ServerConfig a command line makes with ``environ`` (no file read)."""
    settings, _ = read_settings(arguments, environ=environ or {})
    return server_config(settings)


@pytest.fixture(scope="module")
def pod_config(container, dockerfile):
    """The server's settings in the pod: the image's variables, the container's
    env (none here) and its arguments."""
    environment = server_environment(dockerfile)
    environment.update({item["name"]: item["value"] for item in container.get("env", [])})
    return config_of(container["args"], environment)


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_probes_get_a_route_the_app_answers_on_the_bound_port(container, probe, pod_config):
    check = container[probe]["httpGet"]
    (port,) = [port for port in container["ports"] if check["port"] in (port["name"],
                                                                      port["containerPort"])]
    binds = pod_config.binds
    assert binds == (f"0.0.0.0:{port['containerPort']}",)
    assert app_answers(check["path"]) == "200 OK"


def test_liveness_judges_more_slowly_than_readiness(container):
    def patience(probe: dict) -> int:
        return probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)

    assert patience(container["livenessProbe"]) > patience(container["readinessProbe"])


def prestop_seconds(container: dict) -> int:
    """The preStop pause: ``sleep N`` run in the container, or the sleep action."""
    hook = container["lifecycle"]["preStop"]
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    program, seconds = hook["exec"]["command"]
    assert program in ("sleep", "/bin/sleep")
    return int(seconds)


def test_grace_period_outlasts_prestop_and_shutdown_timeout_with_room_to_exit(manifests, container,
                                                                             pod_config):
    grace = manifests["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown_timeout = pod_config.shutdown_timeout
    assert prestop_seconds(container) >= 5
    # The supervisor waits --shutdown-timeout + 5 s before it kills a worker.
    assert grace >= prestop_seconds(container) + shutdown_timeout + 10


def test_pod_runs_as_the_images_non_root_user_without_privileges(manifests, container, dockerfile):
    pod = manifests["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == image_uid(dockerfile)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_container_asks_for_cpu_and_memory_and_caps_memory(container):
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def quantity(text: str) -> int:
    """A Kubernetes byte quantity (2Gi, 512Mi, 1G) in bytes."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
             "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    number, unit = re.fullmatch(r"(\d+)([KMGT]i?)?", text).groups()
    return int(number) * (units[unit] if unit else 1)


def test_spooled_bytes_fit_the_spool_volume(manifests, container, pod_config):
    # Two 1 GiB uploads used to fill a 2 Gi emptyDir and get the pod evicted:
    # every spooled byte of the process stays within the volume, and one
    # upload within that.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] in ("/tmp", "/var/tmp")]
    (volume,) = [v for v in manifests["Deployment"]["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == mount["name"]]
    size_limit = quantity(volume["emptyDir"]["sizeLimit"])
    assert "--max-spool-bytes" in container["args"] and "--max-body-bytes" in container["args"]
    assert pod_config.max_spool_bytes < size_limit
    assert pod_config.max_body_bytes <= pod_config.max_spool_bytes


def test_metrics_are_on_their_own_port_with_scrape_annotations(manifests, container, pod_config):
    metrics_port = pod_config.metrics_bind.rsplit(":", 1)[1]
    (port,) = [p for p in container["ports"] if str(p["containerPort"]) == metrics_port]
    assert pod_config.binds != (pod_config.metrics_bind,)
    annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_a_disruption_budget_keeps_all_but_one_pod_serving(manifests):
    budget = manifests["PodDisruptionBudget"]
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    replicas = manifests["Deployment"]["spec"]["replicas"]
    if "maxUnavailable" in budget["spec"]:
        assert 1 <= budget["spec"]["maxUnavailable"] < replicas
    else:
        assert 0 < budget["spec"]["minAvailable"] < replicas


# Options named anywhere in the guide.


def guide_text(name: str) -> str:
    """One text of the deployment guide, as far as it may name wsgiserver's options."""
    if name == "kubernetes.yaml":
        return (DEPLOY / name).read_text()
    if name.startswith("README "):
        return readme_section(name.removeprefix("README "))
    text = (DEPLOY / name).read_text()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    commands = [item.arguments for item in read_dockerfile(text)
                if item.keyword not in NOT_THE_SERVERS]
    return "\n".join(comments + commands)


@pytest.mark.parametrize("name", GUIDE)
def test_every_option_the_guide_names_exists(name):
    text = guide_text(name)
    assert OPTION.search(text), "no option found: is the text read at all?"
    assert unknown_options(text) == set()


def test_readme_states_the_numbers_of_the_manifest(manifests, container):
    section = readme_section("Kubernetes")
    grace = manifests["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown_timeout = config_of(container["args"]).shutdown_timeout
    assert f"terminationGracePeriodSeconds: {grace}`" in section
    assert f"`sleep {prestop_seconds(container)}`" in section
    assert f"`--shutdown-timeout {shutdown_timeout:g}`" in section

"""What deploy/ ships, checked against packyard itself: the container image's definition (parsed with
dockerfile-parse), its one build step (deploy/install.sh, run here for real in an empty directory and a fresh
virtual environment, after which the installed `packyard` serves), the compose file (parsed with PyYAML,
its commands parsed by packyard's own argument parser), the systemd unit (`systemd-analyze verify`) and the
nginx configuration (`nginx -t`). The topology they describe runs in tests/test_topology.py."""

from __future__ import annotations

import configparser
import contextlib
import fnmatch
import io
import os
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from packyard.cli import build_parser, main
from packyard.tls import ensure_local_tls
from tests.conftest import Backend
from tests.support import nginx
from tests.support.server import free_port, serving

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SOURCES = "\n".join(p.read_text() for p in (ROOT / "src" / "packyard").rglob("*.py"))


def parse_command(argv: list[str]) -> Any:
    """A packyard command line as `packyard` itself parses it (argparse exits on an unknown flag), and
    every flag it uses shown by that command's --help."""
    args = build_parser().parse_args(argv)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit):
        build_parser().parse_args([argv[0], "--help"])
    for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
        assert flag in shown.getvalue(), f"`packyard {argv[0]} --help` doesn't list {flag}"
    return args


def assert_real_settings(names: list[str]) -> None:
    for name in names:
        if name.startswith("PACKYARD_"):
            assert f'"{name}"' in SOURCES, f"{name} is not a setting packyard reads"


# --------------------------------------------------------------------------- the container image


def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DEPLOY / "Dockerfile"))


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def test_the_image_runs_as_a_user_with_its_data_on_a_volume_and_a_healthcheck() -> None:
    d = dockerfile()
    assert d.baseimage.startswith("python:3.11-slim")
    (user,) = instructions(d, "USER")
    assert user.split(":")[0] not in ("root", "0"), "the server must not run as root"
    data_dir = d.envs["PACKYARD_DATA_DIR"]
    (volume,) = instructions(d, "VOLUME")
    assert yaml.safe_load(volume) == [data_dir]
    assert d.envs["PACKYARD_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container, published by its runtime
    assert instructions(d, "EXPOSE") == [d.envs["PACKYARD_PORT"]]
    assert yaml.safe_load(instructions(d, "ENTRYPOINT")[0]) == ["packyard"]
    command = yaml.safe_load(instructions(d, "CMD")[0])
    parse_command(command)
    assert command[0] == "serve"
    (healthcheck,) = instructions(d, "HEALTHCHECK")
    options, _, check = healthcheck.partition("CMD")
    assert "--interval" in options
    probe = yaml.safe_load(check.strip())
    assert probe[:2] == ["packyard", "health"]
    parse_command(probe[1:])
    assert_real_settings(list(d.envs))


def test_the_images_one_build_step_is_the_install_script() -> None:
    d = dockerfile()
    (run,) = instructions(d, "RUN")
    steps = [shlex.split(step) for step in run.split("&&")]
    install = steps[0]
    assert install[0].endswith("/deploy/install.sh")
    (user,) = instructions(d, "USER")
    assert install[install.index("--user") + 1] == user
    assert install[install.index("--data-dir") + 1] == d.envs["PACKYARD_DATA_DIR"]
    prefix = install[-1]
    assert d.envs["PATH"].startswith(f"{prefix}/bin:")
    assert [s[:2] for s in steps[1:]] == [["rm", "-rf"]], "nothing but the script (and removing its source)"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


def copy_checkout(target: Path) -> Path:
    """The build context as docker would send it: the checkout less what .dockerignore leaves out (a
    pattern names a path from the root; `**/` lets it match at any depth)."""
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    anywhere = [p.removeprefix("**/") for p in patterns if p.startswith("**/")]
    at_root = [p for p in patterns if not p.startswith("**/")]

    def ignored(directory: str, names: list[str]) -> set[str]:
        out = {n for n in names if any(fnmatch.fnmatch(n, p) for p in anywhere)}
        if Path(directory) == ROOT:
            out |= {n for n in names if any(fnmatch.fnmatch(n, p) for p in at_root)}
        return out

    shutil.copytree(ROOT, target, ignore=ignored)
    return target


def clean_env(home: Path) -> dict[str, str]:
    """No virtual environment, no PYTHONPATH, no PACKYARD_* setting: only what a fresh shell has (and pip's
    own settings, so it finds its index the way this machine's pip does)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    if (Path.home() / ".cache" / "pip").is_dir():  # reuse downloaded wheels: the same files, faster
        env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
    return env


@pytest.mark.slow
def test_the_install_script_installs_a_packyard_that_serves(tmp_path: Path) -> None:
    if os.environ.get("PACKYARD_TEST_POSTGRES_URL"):
        pytest.skip("the installed server runs on SQLite in its own data directory: the SQLite lane runs this once")
    source = copy_checkout(tmp_path / "src")
    prefix, data_dir, home = tmp_path / "opt" / "packyard", tmp_path / "data", tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(source / "deploy" / "install.sh"), "--data-dir", str(data_dir), str(prefix)],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("installed packyard "), done.stdout
    print(f"install.sh took {time.monotonic() - started:.1f}s")
    assert data_dir.stat().st_mode & 0o777 == 0o700
    # packyard is the installed copy, not this checkout.
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import packyard; print(packyard.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(prefix)), where

    packyard = str(prefix / "bin" / "packyard")
    port = free_port()
    run_env = {**env, "PACKYARD_PORT": str(port)}
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [packyard, "serve", "--data-dir", str(data_dir)], env=run_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        health = [packyard, "health", "--data-dir", str(data_dir)]
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            probe = subprocess.run(health, env=run_env, capture_output=True, text=True, timeout=30, check=False)
            if probe.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # polling a server that is starting up, bounded by the deadline
        assert probe.returncode == 0, probe.stderr + (tmp_path / "serve.log").read_text()
        checks = '"checks":{"database":"ok","migrations":"ok","jobs":"ok","shutdown":"ok"}'
        assert probe.stdout.strip() == f'https://localhost:{port}/readyz: {{"status":"ready",{checks}}}'
        # The installed server answers the API over TLS, verified against the CA it generated.
        banner = (tmp_path / "serve.log").read_text()
        secret = next(line.split(": ", 1)[1] for line in banner.splitlines() if line.startswith("client_secret: "))
        client_id = next(line.split(": ", 1)[1] for line in banner.splitlines() if line.startswith("client_id: "))
        with httpx.Client(
            base_url=f"https://localhost:{port}", verify=ssl.create_default_context(cafile=data_dir / "tls" / "ca.pem")
        ) as c:
            token = c.post("/oauth2/token", auth=(client_id, secret), data={"grant_type": "client_credentials"})
            assert token.status_code == 200, token.text
            # ... and the web console's pages and stylesheet, from the installed package's files.
            page = c.get("/sign-in")
            assert page.status_code == 200
            assert "<h1>Sign in</h1>" in page.text
            assert c.get("/static/console.css").headers["content-type"].startswith("text/css")
    finally:
        server.terminate()
        server.wait(20)
    assert server.returncode == 0
    probe = subprocess.run(health, env=run_env, capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode == 1
    assert probe.stderr.startswith(f"packyard: https://localhost:{port}/readyz did not answer"), probe.stderr
    assert len(probe.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one PREFIX"),
        (["--from", "/nonexistent", "PREFIX"], "--from /nonexistent is neither a packyard checkout nor a wheel"),
        (["--bogus", "PREFIX"], "unknown option --bogus"),
    ],
)
def test_the_install_script_refuses_bad_arguments_in_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_install_script_creates_a_user_only_as_root() -> None:
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or runuser is None:
        pytest.skip("needs root (and runuser) to run the script as an ordinary user")
    script = (DEPLOY / "install.sh").read_text()  # given as text: the user may not reach the checkout
    done = subprocess.run(
        [runuser, "-u", "nobody", "--", "bash", "-c", script, "install.sh", "--user", "pky", "/nonexistent/p"],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )
    assert done.returncode == 2, done.stderr
    assert "--user pky creates a system user, which needs root" in done.stderr


def test_health_says_in_one_line_what_did_not_answer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/readyz"
    assert main(["health", "--url", url, "--data-dir", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"packyard: {url} did not answer:")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "absent").exists(), "a health check creates nothing"
    with pytest.raises(SystemExit, match=r"--ca-file .* is not a file"):
        main(["health", "--url", "https://localhost:1/readyz", "--ca-file", str(tmp_path / "none.pem")])


# --------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_is_valid_against_the_compose_specification() -> None:
    # check-jsonschema ships the Compose Specification's JSON schema (the one `docker compose` validates with).
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_one_migrator_two_replicas_and_nginx_on_postgresql() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "packyard-1", "packyard-2", "nginx"}
    packyards = {name: s for name, s in services.items() if s.get("image") == "packyard:latest"}
    assert set(packyards) == {"migrate", "packyard-1", "packyard-2"}
    for service in packyards.values():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["environment"]["PACKYARD_DATABASE_URL"].startswith("postgresql://packyard:")
        assert "@postgres:5432/" in service["environment"]["PACKYARD_DATABASE_URL"]
        assert_real_settings(list(service["environment"]))
        parse_command(service["command"])
    # Exactly one migrator, and the replicas start after it finished.
    migrators = [
        n for n, s in packyards.items() if s["command"][:2] == ["db", "upgrade"] or "--migrate" in s["command"]
    ]
    assert migrators == ["migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    replicas = {n: s for n, s in packyards.items() if s["command"][0] == "serve"}
    assert set(replicas) == {"packyard-1", "packyard-2"}
    nginx_address = services["nginx"]["networks"]["backend"]["ipv4_address"]
    for replica in replicas.values():
        assert replica["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        args = parse_command(replica["command"])
        assert args.no_tls, "TLS ends at nginx"
        assert replica["environment"]["PACKYARD_FORWARDED_ALLOW_IPS"] == nginx_address
        assert replica["environment"]["PACKYARD_HEALTH_URL"] == f"http://127.0.0.1:{args.port}/readyz"
        assert "ports" not in replica, "replicas are reached through nginx only"
    assert services["packyard-2"]["depends_on"]["packyard-1"] == {"condition": "service_healthy"}
    secrets = {s["environment"]["PACKYARD_SECRET_KEY"] for s in replicas.values()}
    assert len(secrets) == 1, "every replica has the same secret"
    # nginx proxies to both replicas on the port they listen on, with the shipped configuration.
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    servers = [d["args"][0] for d in nginx.find(nginx.parsed(), "http", "upstream", "server")]
    assert servers == [f"{n}:{parse_command(s['command']).port}" for n, s in replicas.items()]


# --------------------------------------------------------------------------- nginx


def test_nginx_conf_forwards_what_packyard_needs_and_never_resends_a_post() -> None:
    conf = nginx.parsed()
    location = nginx.find(conf, "http", "server", "location")[0]["block"]
    headers = {d["args"][0]: d["args"][1] for d in location if d["directive"] == "proxy_set_header"}
    assert headers["Host"] == "$http_host", "the port the client used is part of the URLs packyard hands out"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Forwarded-For"] == "$remote_addr"
    (next_upstream,) = [d["args"] for d in location if d["directive"] == "proxy_next_upstream"]
    assert "non_idempotent" not in next_upstream
    (listen,) = nginx.find(conf, "http", "server", "listen")
    assert "ssl" in listen["args"]
    (size,) = nginx.find(conf, "http", "server", "client_max_body_size")
    assert int(size["args"][0].rstrip("m")) * 1024 * 1024 > 24 * 1024 * 1024, "above UploadSbom's limit"
    log_format = " ".join(nginx.find(conf, "http", "log_format")[0]["args"])
    assert "$request " not in log_format, "no query strings in the log"
    assert "$args" not in log_format


def test_nginx_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    binary = nginx.nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (scripts/test installs it: apt-get install nginx)")
    files = ensure_local_tls(tmp_path / "tls")
    conf = nginx.adapted(
        tmp_path, port=free_port(), upstreams=["127.0.0.1:1", "127.0.0.1:2"], cert=files.cert, key=files.key
    )
    checked = nginx.check(binary, conf)
    assert checked.returncode == 0, checked.stderr


# --------------------------------------------------------------------------- systemd


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "packyard.service").read_text())
    return parser


def test_the_systemd_unit_is_hardened_and_runs_a_real_command() -> None:
    u = unit()
    service = u["Service"]
    assert service["User"] not in ("root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/packyard/packyard.env"
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/packyard/bin/packyard", "where deploy/install.sh puts it"
    args = parse_command(argv[1:])
    assert service["ReadWritePaths"] == args.data_dir, "the service writes its data directory and nothing else"
    assert service["Environment"] == f"PACKYARD_DATA_DIR={args.data_dir}"
    assert u["Install"]["WantedBy"] == "multi-user.target"
    env_file = [
        line.split("=", 1)[0].lstrip("#")
        for line in (DEPLOY / "packyard.env").read_text().splitlines()
        if "=" in line and line.lstrip("#").startswith("PACKYARD_")
    ]
    assert env_file
    assert_real_settings(env_file)


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the unit's keys are checked by the test above)")
    # The same unit, with ExecStart pointing at a packyard that exists on this machine (verify checks it).
    text = (DEPLOY / "packyard.service").read_text()
    copy = tmp_path / "packyard.service"
    copy.write_text(text.replace("/opt/packyard/bin/packyard", str(Path(sys.executable).parent / "packyard")))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    # verify only warns about an unknown key or a bad value: any output is a defect in the unit.
    assert done.stdout.strip() == ""
    assert done.stderr.strip() == "", done.stderr


# --------------------------------------------------------------------------- behind a proxy


@pytest.mark.slow
def test_forwarded_headers_are_believed_only_from_trusted_proxies(tmp_path: Path, backend: Backend) -> None:
    url = backend.new_url(tmp_path)
    init = backend.init
    path = f"/packer/2023-01-01/organizations/{init.organization_id}/projects/{init.project_id}/runtasks/validation"
    forwarded = {"Host": "packyard.example:9443", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    try:
        for extra, scheme in (((), "https"), (("--forwarded-allow-ips", "192.0.2.1"), "http")):
            (tmp_path / scheme).mkdir()
            with serving(tmp_path / scheme, url, extra=extra) as (server,):
                with httpx.Client(base_url=server.url) as c:
                    token = c.post(
                        "/oauth2/token",
                        auth=(init.client_id, init.client_secret),
                        data={"grant_type": "client_credentials"},
                    ).json()["access_token"]
                    r = c.get(path, headers={**forwarded, "Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text
                # From 127.0.0.1 (trusted by default) the proxy's scheme is believed; from an address not in
                # --forwarded-allow-ips it is not, and the URL says what the connection really was.
                assert r.json()["api_url"].startswith(f"{scheme}://packyard.example:9443/packer/2023-01-01/runtask/")
    finally:
        backend.release(url)

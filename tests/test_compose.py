"""docker-compose.yml agrees with the Procfile, webapp/settings.py, the Dockerfile and nginx.conf.

Each check is a function returning a list of problems, run once on the real
file (which must have none) and once on a deliberately broken copy (which must
be caught), so every check is shown to be able to fail.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "Procfile"
SETTINGS = ROOT / "webapp" / "settings.py"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
NGINX_CONF = ROOT / "docker" / "nginx.conf"
PYPROJECT = ROOT / "pyproject.toml"

APP_SERVICES = ("migrate", "web", "worker", "beat", "seed")  # Django with the app's env
GPU_REPLICAS = ("sglang-0", "sglang-1")  # SGLang engines behind the router (gpu profile)
EMULATORS = ("emulator-0", "emulator-1")  # their stand-ins (emulator profile)
ROUTER = "sglang-router"  # Arbor's one engine endpoint, in front of the replicas
ALL_SERVICES = ("postgres", "redis", "lb", *APP_SERVICES, ROUTER, *GPU_REPLICAS, *EMULATORS)
PORTS = {"web": 8000, "engine": 30000, "postgres": 5432, "redis": 6379}
REF_RE = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[?-])?(?P<rest>[^}]*)\}$")
SECRET_NAME_RE = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE)", re.I)

Compose = dict[str, Any]
Check = Callable[[Compose], list[str]]


# --------------------------------------------------------------------------- sources


def load_compose() -> Compose:
    """The compose file, plus the files it depends on under the key `x-files`.

    Keeping them in the same dict lets the breakage tests change them too.
    """
    c = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    c["x-files"] = {
        "Dockerfile": DOCKERFILE.read_text(encoding="utf-8"),
        "nginx.conf": NGINX_CONF.read_text(encoding="utf-8"),
        "pyproject.toml": PYPROJECT.read_text(encoding="utf-8"),
    }
    return c


def procfile() -> dict[str, list[str]]:
    out = {}
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            out[name.strip()] = shlex.split(command)
    return out


def settings_env() -> dict[str, tuple[bool, Any]]:
    """Every `env.<parser>("NAME", ...)` in settings: name -> (has a default, default)."""
    tree = ast.parse(SETTINGS.read_text(encoding="utf-8"))
    out: dict[str, tuple[bool, Any]] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            default_node = node.args[1] if len(node.args) > 1 else None
            for kw in node.keywords:
                if kw.arg == "default":
                    default_node = kw.value
            default = None
            if default_node is not None:
                try:
                    default = ast.literal_eval(default_node)
                except ValueError:
                    default = ast.unparse(default_node)
            out[node.args[0].value] = (default_node is not None, default)
    return out


def routed_queues() -> set[str]:
    """The queues named in settings' CELERY_TASK_ROUTES."""
    tree = ast.parse(SETTINGS.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "CELERY_TASK_ROUTES" for t in node.targets
        ):
            routes = ast.literal_eval(node.value)
            return {route["queue"] for route in routes.values() if "queue" in route}
    return set()


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def normalise(argv: list[str]) -> list[str]:
    """`.venv/bin/daphne` -> `daphne`, `python3` -> `python`: the image's PATH has them."""
    out = list(argv)
    if out:
        exe = out[0].rsplit("/", 1)[-1]
        out[0] = "python" if exe in ("python", "python3") else exe
    return out


def with_bind(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    if flag in out:
        out[out.index(flag) + 1] = value
    return out


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test", [])
    return " ".join(test) if isinstance(test, list) else str(test)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def duration_s(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", str(text)):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


def aliases(service: dict[str, Any]) -> set[str]:
    nets = service.get("networks") or {}
    if isinstance(nets, list):
        return set()
    return {a for net in nets.values() for a in ((net or {}).get("aliases") or [])}


# --------------------------------------------------------------------------- checks


def check_services(c: Compose) -> list[str]:
    services = c.get("services", {})
    problems = [f"service {name!r} is missing" for name in ALL_SERVICES if name not in services]
    for name in GPU_REPLICAS:
        if (services.get(name) or {}).get("profiles") != ["gpu"]:
            problems.append(f"{name} must be in (only) the 'gpu' profile")
    for name in EMULATORS:
        if (services.get(name) or {}).get("profiles") != ["emulator"]:
            problems.append(f"{name} must be in (only) the 'emulator' profile")
    if sorted((services.get(ROUTER) or {}).get("profiles") or []) != ["emulator", "gpu"]:
        problems.append(f"{ROUTER} must run under both engine profiles (gpu, emulator)")
    for name in ("postgres", "redis", "lb", "migrate", "web", "worker", "beat"):
        if (services.get(name) or {}).get("profiles"):
            problems.append(f"{name} must run without a profile")
    return problems


def check_commands_match_procfile(c: Compose) -> list[str]:
    s, proc = c["services"], procfile()
    problems = []
    expected = {
        # Inside a container the process listens on every interface.
        "web": with_bind(normalise(proc["web"]), "-b", "0.0.0.0"),
        "worker": normalise(proc["worker"]),
        "beat": normalise(proc["beat"]),
        **{name: with_bind(normalise(proc["emulator"]), "--host", "0.0.0.0") for name in EMULATORS},
    }
    for name, want in expected.items():
        got = normalise(command(s.get(name, {})))
        if got != want:
            problems.append(f"{name}: command {got} differs from the Procfile's {want}")
    web = command(s.get("web", {}))
    if "webapp.asgi:application" not in web or "-p" not in web:
        problems.append("web must serve webapp.asgi:application with -p")
    elif web[web.index("-p") + 1] != str(PORTS["web"]):
        problems.append(f"web must listen on {PORTS['web']}")
    worker = command(s.get("worker", {}))
    if "--pool" not in worker or worker[worker.index("--pool") + 1] != "threads":
        problems.append("worker needs --pool threads")
    # Every queue a task is routed to (plus Celery's default) has a consumer.
    queues = set(worker[worker.index("--queues") + 1].split(",")) if "--queues" in worker else set()
    missing = sorted(({"celery"} | routed_queues()) - queues)
    if missing:
        problems.append(f"worker must consume the queue(s) {missing} (--queues)")
    if command(s.get("migrate", {}))[-2:] != ["migrate", "--noinput"]:
        problems.append("migrate must run `manage.py migrate --noinput`")
    return problems


def check_environment_names(c: Compose) -> list[str]:
    known = settings_env()
    required = [name for name, (has_default, _) in known.items() if not has_default]
    problems = []
    for name in APP_SERVICES:
        env = env_of(c["services"].get(name, {}))
        for key in env:
            if key not in known:
                problems.append(f"{name}: {key} is not read by webapp/settings.py")
        for key in required:
            if key not in env:
                problems.append(f"{name}: required setting {key} is not provided")
        # Their defaults point at 127.0.0.1, which is the container itself.
        for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ARBOR_EMULATOR_URL"):
            if key not in env:
                problems.append(f"{name}: {key} must be set (its default is loopback)")
    return problems


def check_urls_and_ports(c: Compose) -> list[str]:
    s = c["services"]
    known = settings_env()
    problems = []
    defaults = {
        "DATABASE_URL": ("postgres", PORTS["postgres"]),
        "REDIS_URL": ("redis", PORTS["redis"]),
        "CELERY_BROKER_URL": ("redis", PORTS["redis"]),
        "ARBOR_EMULATOR_URL": (ROUTER, PORTS["engine"]),
    }
    for key, (host, port) in defaults.items():
        has_default, default = known.get(key, (False, None))
        if key == "CELERY_BROKER_URL":  # defaults to REDIS_URL
            default = known["REDIS_URL"][1]
        if not has_default or urlsplit(str(default)).port != port:
            problems.append(f"settings' default {key} does not use port {port}")
        for name in APP_SERVICES:
            value = env_of(s.get(name, {})).get(key)
            if value is None:
                continue
            url = urlsplit(re.sub(r"\$\{[^}]*\}", "x", value))
            if url.hostname != host or url.port != port:
                problems.append(f"{name}: {key}={value} should point at {host}:{port}")
    if [str(p) for p in s.get("lb", {}).get("ports", [])] != ["8000:8000"]:
        problems.append("lb must publish 8000:8000 (and only that)")
    if str(PORTS["web"]) not in [str(p) for p in s.get("web", {}).get("expose", [])]:
        problems.append("web must expose 8000 (to lb)")
    for name, port in (
        ("postgres", PORTS["postgres"]),
        ("redis", PORTS["redis"]),
        (ROUTER, PORTS["engine"]),
        *((name, PORTS["engine"]) for name in (*GPU_REPLICAS, *EMULATORS)),
    ):
        svc = s.get(name, {})
        if str(port) not in [str(p) for p in svc.get("expose", [])]:
            problems.append(f"{name} must expose {port}")
        if str(port) not in healthcheck_text(svc):
            problems.append(f"{name}'s healthcheck must probe port {port}")
    hc = healthcheck_text(s.get("web", {}))
    if f"127.0.0.1:{PORTS['web']}/healthz" not in hc:
        problems.append("web's healthcheck must GET /healthz on port 8000")
    return problems


def check_sglang(c: Compose) -> list[str]:
    problems = []
    devices_seen: dict[str, str] = {}
    for name in GPU_REPLICAS:
        svc = c["services"].get(name, {})
        problems += [f"{name}: {p}" for p in _check_sglang_replica(svc)]
        gpus = env_of(svc).get("CUDA_VISIBLE_DEVICES", "")
        ids = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", gpus).split(",")
        if len(ids) != 8:
            problems.append(f"{name}: CUDA_VISIBLE_DEVICES must default to 8 GPUs (--tp 8)")
        for gpu in ids:
            if gpu in devices_seen:
                problems.append(f"{name} and {devices_seen[gpu]} share GPU {gpu}")
            devices_seen[gpu] = name
    return problems


def _check_sglang_replica(svc: dict[str, Any]) -> list[str]:
    argv = command(svc)
    problems = []
    if svc.get("image") != "lmsysorg/sglang:latest":
        problems.append("sglang must use the official image lmsysorg/sglang:latest")
    if argv[:3] != ["python3", "-m", "sglang.launch_server"]:
        problems.append("sglang must run python3 -m sglang.launch_server")

    def value(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

    for flag, want in (
        ("--model-path", "deepseek-ai/DeepSeek-R1"),
        ("--tp", "8"),
        ("--reasoning-parser", "deepseek-r1"),
        ("--host", "0.0.0.0"),
        ("--port", str(PORTS["engine"])),
    ):
        if value(flag) != want:
            problems.append(f"sglang needs {flag} {want}")
    for flag in ("--trust-remote-code", "--enable-metrics"):
        if flag not in argv:
            problems.append(f"sglang needs {flag}")
    devices = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get(
        "devices"
    ) or []
    if not any(
        d.get("driver") == "nvidia"
        and d.get("count") == "all"
        and "gpu" in d.get("capabilities", [])
        for d in devices
    ):
        problems.append("sglang needs a reservation of all nvidia GPUs")
    if "/health" not in healthcheck_text(svc):
        problems.append("sglang's healthcheck must probe /health")
    if duration_s((svc.get("healthcheck") or {}).get("start_period", "0s")) < 600:
        problems.append("sglang's healthcheck needs a long start_period (model load)")
    if str(svc.get("shm_size")) != "32g" or svc.get("ipc") != "host":
        problems.append("sglang needs shm_size 32g and ipc host")
    if not any(str(v).endswith(":/root/.cache/huggingface") for v in svc.get("volumes", [])):
        problems.append("sglang needs a volume for the Hugging Face cache")
    return problems


def router_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Parse a `launch_router` command with sglang-router's own parser (the pinned version).

    Returns (the parsed arguments, problems); an unknown flag is a problem.
    """
    try:
        from sglang_router.launch_router import parse_router_args
    except ImportError:  # pragma: no cover - the dev extra installs it
        pytest.skip("sglang-router is not installed (pip install -e .[dev])")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage message
            args = parse_router_args(argv)
    except SystemExit:
        return {}, [f"sglang-router {ROUTER_PIN} rejects the arguments {argv}"]
    return vars(args), []


def pinned(text: str, package: str) -> str | None:
    match = re.search(rf"{re.escape(package)}==([0-9][0-9A-Za-z.+-]*)", text)
    return match.group(1) if match else None


ROUTER_PIN = pinned(PYPROJECT.read_text(encoding="utf-8"), "sglang-router")


def check_router(c: Compose) -> list[str]:
    s = c["services"]
    files = c.get("x-files", {})
    svc = s.get(ROUTER, {})
    argv = command(svc)
    problems = []
    if argv[:3] != ["python", "-m", "sglang_router.launch_router"]:
        problems.append(f"{ROUTER} must run python -m sglang_router.launch_router")
        return problems
    args, bad = router_args(argv[3:])
    if bad:
        return bad
    for key, want in (
        ("policy", "cache_aware"),
        ("host", "0.0.0.0"),
        ("port", PORTS["engine"]),
    ):
        if args.get(key) != want:
            problems.append(f"{ROUTER} needs --{key} {want}, has {args.get(key)}")
    # A long R1 answer (32k tokens at ~40 tok/s) takes ~14 minutes; the first start
    # of a replica downloads and loads ~700 GB.
    if (args.get("request_timeout_secs") or 0) < 3600:
        problems.append(f"{ROUTER} needs --request-timeout-secs >= 3600")
    if (args.get("worker_startup_timeout_secs") or 0) < 3600:
        problems.append(f"{ROUTER} needs --worker-startup-timeout-secs >= 3600")
    # The worker URLs are exactly the GPU replicas, at the engine port ...
    urls = list(args.get("worker_urls") or [])
    replicas = [f"http://{name}:{PORTS['engine']}" for name in GPU_REPLICAS]
    if sorted(urls) != sorted(replicas) or len(set(urls)) != len(urls):
        problems.append(f"{ROUTER} --worker-urls {urls} must be the GPU replicas {replicas}")
    gpu = {n for n, v in s.items() if "sglang.launch_server" in command(v)}
    if gpu != set(GPU_REPLICAS):
        problems.append(f"the SGLang services {sorted(gpu)} must be {list(GPU_REPLICAS)}")
    # ... and under the emulator profile each name is an emulator replica's alias.
    owners: dict[str, list[str]] = {}
    for name in EMULATORS:
        emu = s.get(name, {})
        for alias in aliases(emu):
            owners.setdefault(alias, []).append(name)
        argv_e = command(emu)
        if "inference.emulator" not in argv_e or "--port" not in argv_e:
            problems.append(f"{name} must run -m inference.emulator --port ...")
        elif argv_e[argv_e.index("--port") + 1] != str(PORTS["engine"]):
            problems.append(f"{name} must listen on the engine's port")
    for url in urls:
        host = urlsplit(url).hostname or ""
        if len(owners.get(host, [])) != 1:
            problems.append(f"{host} must be the alias of exactly one emulator replica")
    # The router runs the app image, which installs the pinned wheel.
    if svc.get("image") != s.get("web", {}).get("image"):
        problems.append(f"{ROUTER} must run the app image")
    docker_pin = pinned(files.get("Dockerfile", ""), "sglang-router")
    if docker_pin is None or docker_pin != pinned(files.get("pyproject.toml", ""), "sglang-router"):
        problems.append(
            f"docker/Dockerfile must install sglang-router=={ROUTER_PIN} (pyproject's pin),"
            f" found {docker_pin}"
        )
    if "/health" not in healthcheck_text(svc):
        problems.append(f"{ROUTER}'s healthcheck must probe /health")
    return problems


def check_load_balancer(c: Compose) -> list[str]:
    """lb (nginx) spreads HTTP and WebSocket connections over every web replica."""
    s = c["services"]
    lb = s.get("lb", {})
    conf = re.sub(r"#.*", "", c.get("x-files", {}).get("nginx.conf", ""))
    problems = []
    if not any(
        str(v).startswith("./docker/nginx.conf:/etc/nginx/nginx.conf")
        for v in lb.get("volumes", [])
    ):
        problems.append("lb must mount ./docker/nginx.conf as /etc/nginx/nginx.conf")
    if ((lb.get("depends_on") or {}).get("web") or {}).get("condition") != "service_healthy":
        problems.append("lb must wait for a healthy web")
    # Resolved per request through Docker's DNS, so every scaled replica is used.
    var = re.search(r"set\s+\$(\w+)\s+http://web:(\d+)\s*;", conf)
    if var is None or var.group(2) != str(PORTS["web"]):
        problems.append("nginx.conf must `set $var http://web:8000;` (resolved per request)")
    elif not re.search(rf"proxy_pass\s+\${var.group(1)}\s*;", conf):
        problems.append(f"nginx.conf must proxy_pass ${var.group(1)}")
    if not re.search(r"resolver\s+127\.0\.0\.11\b", conf):
        problems.append("nginx.conf needs `resolver 127.0.0.11` (Docker's DNS)")
    for needle, why in (
        (r"proxy_http_version\s+1\.1\s*;", "HTTP/1.1 upstream (WebSocket)"),
        (r"proxy_set_header\s+Upgrade\s+\$http_upgrade\s*;", "the Upgrade header"),
        (r"proxy_set_header\s+Connection\s+\$connection_upgrade\s*;", "the Connection header"),
        (r"proxy_buffering\s+off\s*;", "no buffering (the gateway's SSE)"),
        (r"proxy_set_header\s+X-Forwarded-For\b", "X-Forwarded-For (daphne --proxy-headers)"),
        (r"listen\s+8000\s*;", "listen 8000"),
    ):
        if not re.search(needle, conf):
            problems.append(f"nginx.conf needs {why}")
    read = re.search(r"proxy_read_timeout\s+(\S+?)\s*;", conf)
    if read is None or duration_s(read.group(1)) < 600:
        problems.append("nginx.conf needs proxy_read_timeout >= 600s (long streams)")
    return problems


def check_scaling_and_order(c: Compose) -> list[str]:
    s = c["services"]
    problems = []
    for name, svc in s.items():
        if "container_name" in svc:
            problems.append(f"{name}: container_name prevents scaling and parallel projects")
    for name in ("web", "worker"):  # `docker compose up --scale web=N --scale worker=M`
        if s.get(name, {}).get("ports"):
            problems.append(f"{name} must not publish host ports (it could not scale)")
        if s.get(name, {}).get("deploy", {}).get("replicas") not in (None, 1):
            problems.append(f"{name}: set the replica count with --scale, not deploy.replicas")
    for name in ("web", "worker", "beat"):
        dep = (s.get(name, {}).get("depends_on") or {}).get("migrate") or {}
        if dep.get("condition") != "service_completed_successfully":
            problems.append(f"{name} must wait for migrate to complete successfully")
    images = {s[n].get("image") for n in (*APP_SERVICES, *EMULATORS, ROUTER) if n in s}
    if len(images) != 1:
        problems.append(f"app services must share one image, found {images}")
    if (s.get("web", {}).get("build") or {}).get("dockerfile") != "docker/Dockerfile":
        problems.append("the app image is built from docker/Dockerfile")
    return problems


def check_no_literal_secrets(c: Compose) -> list[str]:
    problems = []
    for name, svc in c["services"].items():
        for key, value in env_of(svc).items():
            ref = REF_RE.match(value)
            # A secret may only be a reference, without a non-empty literal default.
            if SECRET_NAME_RE.search(key) and (
                ref is None or (ref["op"] in (":-", "-") and ref["rest"])
            ):
                problems.append(f"{name}: {key} holds a literal value")
            url = urlsplit(value) if "://" in value else None
            if url is not None and url.password is not None and not url.password.startswith("${"):
                problems.append(f"{name}: {key} embeds a literal password")
    secret_ref = env_of(c["services"].get("web", {})).get("ARBOR_SECRET_KEY", "")
    match = REF_RE.match(secret_ref)
    if match is None or match["op"] != ":?":
        problems.append("ARBOR_SECRET_KEY must be ${ARBOR_SECRET_KEY:?...} (fail when unset)")
    return problems


CHECKS: list[Check] = [
    check_services,
    check_commands_match_procfile,
    check_environment_names,
    check_urls_and_ports,
    check_sglang,
    check_router,
    check_load_balancer,
    check_scaling_and_order,
    check_no_literal_secrets,
]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
def test_compose_file(check: Check) -> None:
    assert check(load_compose()) == []


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def apply(c: Compose) -> None:
        *head, last = path.split(".")
        node = c
        for part in head:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return apply


def _replace_arg(service: str, old: str, new: str) -> Callable[[Compose], None]:
    def apply(c: Compose) -> None:
        svc = c["services"][service]
        svc["command"] = [new if a == old else a for a in command(svc)]

    return apply


_DELETE = object()

BREAKAGES = [
    ("beat missing", check_services, _set("services.beat", _DELETE)),
    ("emulator without profile", check_services, _set("services.emulator-0.profiles", [])),
    ("router gpu only", check_services, _set("services.sglang-router.profiles", ["gpu"])),
    ("lb missing", check_services, _set("services.lb", _DELETE)),
    ("daphne port", check_commands_match_procfile, _replace_arg("web", "8000", "8001")),
    ("asgi path", check_commands_match_procfile, _replace_arg("web", "webapp.asgi:application", "webapp.wsgi:application")),
    ("worker pool", check_commands_match_procfile, _replace_arg("worker", "threads", "prefork")),
    ("worker queues", check_commands_match_procfile, _replace_arg("worker", "generation,batch,celery", "celery")),
    ("batch queue", check_commands_match_procfile, _replace_arg("worker", "generation,batch,celery", "generation,celery")),
    ("beat schedule", check_commands_match_procfile, _replace_arg("beat", ".run/celerybeat-schedule", "/tmp/s")),
    ("emulator module", check_commands_match_procfile, _replace_arg("emulator-1", "inference.emulator", "other.emulator")),
    ("unknown env name", check_environment_names, _set("services.web.environment.ARBOR_SECRETKEY", "x")),
    ("secret key absent", check_environment_names, _set("services.worker.environment.ARBOR_SECRET_KEY", _DELETE)),
    ("redis url absent", check_environment_names, _set("services.beat.environment.REDIS_URL", _DELETE)),
    ("postgres port", check_urls_and_ports, _set("services.web.environment.DATABASE_URL", "postgres://arbor:${P:?}@postgres:5433/arbor")),
    ("engine host", check_urls_and_ports, _set("services.worker.environment.ARBOR_EMULATOR_URL", "http://sglang-0:30000")),
    ("lb port", check_urls_and_ports, _set("services.lb.ports", ["8080:8000"])),
    ("router expose", check_urls_and_ports, _set("services.sglang-router.expose", ["29000"])),
    ("web healthcheck", check_urls_and_ports, _set("services.web.healthcheck.test", ["CMD", "true"])),
    ("sglang tp", check_sglang, _replace_arg("sglang-0", "8", "4")),
    ("sglang parser", check_sglang, _replace_arg("sglang-1", "deepseek-r1", "qwen3")),
    ("sglang trust", check_sglang, _replace_arg("sglang-0", "--trust-remote-code", "--disable-radix-cache")),
    ("sglang gpus", check_sglang, _set("services.sglang-1.deploy", _DELETE)),
    ("sglang health", check_sglang, _set("services.sglang-0.healthcheck.test", ["CMD", "curl", "http://127.0.0.1:30000/v1/models"])),
    ("replicas share gpus", check_sglang, _set("services.sglang-1.environment.CUDA_VISIBLE_DEVICES", "${SGLANG_1_GPUS:-0,1,2,3,4,5,6,7}")),
    ("router module", check_router, _replace_arg("sglang-router", "sglang_router.launch_router", "sglang_router.launch_server")),
    ("router policy", check_router, _replace_arg("sglang-router", "cache_aware", "round_robin")),
    ("router port", check_router, _replace_arg("sglang-router", "30000", "30001")),
    ("router unknown flag", check_router, _replace_arg("sglang-router", "--policy", "--routing-policy")),
    ("router short timeout", check_router, _replace_arg("sglang-router", "3600", "600")),
    ("router worker missing", check_router, _replace_arg("sglang-router", "http://sglang-1:30000", "http://sglang-0:30000")),
    ("router worker port", check_router, _replace_arg("sglang-router", "http://sglang-1:30000", "http://sglang-1:8000")),
    ("replica renamed", check_router, lambda c: c["services"].__setitem__("sglang-2", c["services"].pop("sglang-1"))),
    ("emulator alias", check_router, _set("services.emulator-1.networks", _DELETE)),
    ("emulator port", check_router, _replace_arg("emulator-0", "30000", "30001")),
    ("router pin drift", check_router, lambda c: c["x-files"].__setitem__("Dockerfile", c["x-files"]["Dockerfile"].replace("sglang-router==", "sglang-router==9.9."))),
    ("router not installed", check_router, lambda c: c["x-files"].__setitem__("Dockerfile", "FROM python:3.11-slim\n")),
    ("lb no upgrade", check_load_balancer, lambda c: c["x-files"].__setitem__("nginx.conf", c["x-files"]["nginx.conf"].replace("proxy_set_header Upgrade", "# proxy_set_header Upgrade"))),
    ("lb static upstream", check_load_balancer, lambda c: c["x-files"].__setitem__("nginx.conf", c["x-files"]["nginx.conf"].replace("proxy_pass $web;", "proxy_pass http://web:8000;"))),
    ("lb buffering", check_load_balancer, lambda c: c["x-files"].__setitem__("nginx.conf", c["x-files"]["nginx.conf"].replace("proxy_buffering off;", ""))),
    ("lb conf not mounted", check_load_balancer, _set("services.lb.volumes", [])),
    ("container name", check_scaling_and_order, _set("services.worker.container_name", "arbor-worker")),
    ("web container name", check_scaling_and_order, _set("services.web.container_name", "arbor-web")),
    ("worker host port", check_scaling_and_order, _set("services.worker.ports", ["9000:9000"])),
    ("web host port", check_scaling_and_order, _set("services.web.ports", ["8000:8000"])),
    ("router other image", check_scaling_and_order, _set("services.sglang-router.image", "lmsysorg/sgl-model-gateway:latest")),
    ("no migrate wait", check_scaling_and_order, _set("services.web.depends_on.migrate.condition", "service_started")),
    ("literal key", check_no_literal_secrets, _set("services.web.environment.ARBOR_SECRET_KEY", "x" * 40)),
    ("key with default", check_no_literal_secrets, _set("services.web.environment.ARBOR_SECRET_KEY", "${ARBOR_SECRET_KEY:-" + "x" * 40 + "}")),
    ("db password literal", check_no_literal_secrets, _set("services.postgres.environment.POSTGRES_PASSWORD", "hunter2")),
    ("url password literal", check_no_literal_secrets, _set("services.web.environment.DATABASE_URL", "postgres://arbor:hunter2@postgres:5432/arbor")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "breakage"), [(b[1], b[2]) for b in BREAKAGES], ids=[b[0] for b in BREAKAGES]
)
def test_checks_catch_breakage(check: Check, breakage: Callable[[Compose], None]) -> None:
    broken = copy.deepcopy(load_compose())
    # The YAML anchors give services one shared environment dict: unshare it first.
    for svc in broken["services"].values():
        if "environment" in svc:
            svc["environment"] = dict(svc["environment"])
    breakage(broken)
    assert check(broken) != []

#!/usr/bin/env python3
"""`sam local` wiring, checked with the SAM CLI's own code and without Docker.

Runs the real `sam local start-api` and `sam local invoke` commands of the SAM CLI installed in
the tools venv (run it with that venv's python), from the repository root, so they read
samconfig.toml, the template and the env-vars file exactly as they do for a user. Only the
parts that need Docker are replaced: the container client (a mock) and the Lambda runner's
invoke, which records what the function would have been given (the event and the environment the
container would get, from `LocalLambdaRunner.get_invoke_config`) instead of starting it.

It checks that
  * every function gets every variable the env-vars file sets, with the file's value, whatever
    the shell has (the file must only name variables the template declares: SAM drops others
    without a word), the DynamoDB table and endpoint among them, the endpoint one a container
    can reach (not loopback; host.docker.internal mapped by --add-host), the region of
    samconfig.toml and every other template variable resolved to a value;
  * every API Gateway event of events/<binary>/ sent as an HTTP request to SAM's local API
    (its Flask router, built from the template's HttpApi routes) reaches the function whose
    binary is <binary>, with the event's route key, raw path and path parameters;
  * `sam local invoke <function> -e <event>`, for every event and the function of its folder,
    passes the event through and gives the function the same environment as start-api (the
    local_invoke section of samconfig.toml matches the local_start_api one);
  * every HttpApi route of the template has at least one event (OPTIONS aside).

Any failure exits non-zero with every problem found. Usage (scripts/test runs it):

    .tools/venv/bin/python scripts/check_sam_local.py [--env-vars FILE] [--template FILE]
        [--parameter-overrides Architecture=x86_64] [--events DIR]

`--env-vars`, `--template` and `--parameter-overrides` are passed to both commands, over
samconfig.toml's values (SAM's default template is .aws-sam/build/template.yaml once `sam build`
has run, else template.yaml). With a built template each function's bootstrap must be there,
an executable of the function's architecture. `--events` checks another folder of events (to
try a broken one).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import os
import sys
import tomllib
from pathlib import Path
from unittest import mock
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# What a user's shell may hold (README: the local server on DynamoDB): the env-vars file must win.
SHELL = {
    "DYNAMODB_TABLE": "from-the-shell",
    "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "SAM_CLI_TELEMETRY": "0",
}

problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)
    print(f"  FAIL {message}", file=sys.__stdout__)


class Recorder:
    """What the patched runner saw: one entry per invoke."""

    def __init__(self) -> None:
        self.invocations: list[dict] = []
        self.functions: dict[str, dict] = {}  # logical id -> facts, filled by start-api
        self.routes: list = []
        self.env_vars_values: dict | None = None
        self.extra_hosts: dict | None = None
        self.http_results: dict[Path, int] = {}
        self.template_dir = ""


recorder = Recorder()
http_fixtures: list[tuple[Path, dict]] = []
current: dict[str, Path | None] = {"fixture": None}  # the event being sent or invoked


def fake_invoke(self, function_identifier, event, tenant_id=None, stdout=None, stderr=None, **_):
    """LocalLambdaRunner.invoke without Docker: record, answer 200."""
    function = self.get_function(function_identifier, tenant_id)
    config = self.get_invoke_config(function)
    recorder.invocations.append(
        {
            "fixture": current["fixture"],
            "function": function.name,
            "event": json.loads(event),
            "env": config.env_vars.resolve(),
        }
    )
    if stdout is not None:
        stdout.write_str(json.dumps({"statusCode": 200, "body": "{}"}))
    return None


def fake_start(self):
    """LocalApiService.start without Docker: build SAM's local API, send every fixture to it."""
    from samcli.local.apigw.local_apigw_service import LocalApigwService

    runner = self.lambda_runner
    recorder.template_dir = self.cwd
    recorder.routes = list(self.api_provider.api.routes)
    recorder.env_vars_values = runner.env_vars_values
    recorder.extra_hosts = runner.extra_hosts
    for function in runner.provider.get_all():
        config = runner.get_invoke_config(function)
        recorder.functions[function.name] = {
            "binary": ((function.metadata or {}).get("BuildProperties") or {}).get("Binary"),
            "variables": dict((function.environment or {}).get("Variables") or {}),
            "env": config.env_vars.resolve(),
            "architecture": config.architecture,
            "code": config.code_abs_path,
        }
    service = LocalApigwService(
        api=self.api_provider.api,
        lambda_runner=runner,
        port=3000,
        host="127.0.0.1",
        stderr=self.stderr_stream,
    )
    service.create()
    client = service._app.test_client()
    for path, fixture in http_fixtures:
        current["fixture"] = path
        method, raw_path, query, headers, body = http_request_of(fixture)
        response = client.open(
            raw_path, method=method, query_string=query, headers=headers, data=body
        )
        recorder.http_results[path] = response.status_code


def http_request_of(fixture: dict):
    """(method, path, query string, headers, body) of an API Gateway v2 or v1 event."""
    if fixture.get("version") == "2.0":
        method = fixture["requestContext"]["http"]["method"]
        raw_path = fixture["rawPath"]
        query = fixture.get("rawQueryString") or ""
    else:
        method = fixture["httpMethod"]
        raw_path = fixture["path"]
        multi = fixture.get("multiValueQueryStringParameters") or {}
        single = fixture.get("queryStringParameters") or {}
        query = urlencode([(k, v) for k, vs in multi.items() for v in vs] or list(single.items()))
    headers = {k: v for k, v in (fixture.get("headers") or {}).items() if k.lower() != "host"}
    body = fixture.get("body")
    if body is not None and fixture.get("isBase64Encoded"):
        body = base64.b64decode(body)
    return method, raw_path, query, headers, body


def run_sam(args: list[str]) -> None:
    from samcli.cli.main import cli

    try:
        cli.main(args=args, prog_name="sam", standalone_mode=False)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            problem(f"sam {' '.join(args)} exited with {exit_.code}")
    except Exception as error:  # the CLI's own errors (bad env-vars file, template...)
        problem(f"sam {' '.join(args)}: {type(error).__name__}: {error}")


@contextlib.contextmanager
def quiet():
    """The commands' own output (their logs, the recorded responses); failures print to __stdout__."""
    sink = io.TextIOWrapper(io.BytesIO())
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def is_api_event(fixture: dict) -> bool:
    return "routeKey" in fixture or "httpMethod" in fixture


def check_environment(samconfig: dict) -> None:
    local = samconfig.get("default", {}).get("local_start_api", {}).get("parameters", {})
    region = local.get("region")
    values = recorder.env_vars_values
    if not values:
        problem("sam local start-api read no env-vars file (samconfig.toml: env_vars)")
        return
    if not recorder.functions:
        problem("no functions")
        return
    for logical_id, facts in sorted(recorder.functions.items()):
        env, declared = facts["env"], facts["variables"]
        # What the file gives this function: its "Parameters" (all functions), then its own section.
        expected = dict(values.get("Parameters") or {})
        for key in (logical_id, facts["binary"]):
            expected.update(values.get(key) or {})
        print(f"  {logical_id} ({facts['architecture']}): " + ", ".join(
            f"{k}={env.get(k)!r}" for k in sorted(set(expected) | {"AWS_REGION"})))
        if not expected:
            problem(f"{logical_id}: the env-vars file sets nothing for it")
        for name, value in expected.items():
            if name not in declared:
                problem(f"{logical_id}: the env-vars file sets {name}, which the template does not "
                        "declare for the function (SAM ignores it)")
            elif env.get(name) != str(value):
                problem(f"{logical_id}: {name} is {env.get(name)!r}, the env-vars file says {value!r}")
        for name in ("DYNAMODB_TABLE", "AWS_ENDPOINT_URL_DYNAMODB"):
            if name not in expected:
                problem(f"{logical_id}: the env-vars file does not set {name}")
        endpoint = env.get("AWS_ENDPOINT_URL_DYNAMODB", "")
        host = urlparse(endpoint).hostname or ""
        if not endpoint.startswith(("http://", "https://")):
            problem(f"{logical_id}: AWS_ENDPOINT_URL_DYNAMODB {endpoint!r} is not a URL")
        elif host in ("127.0.0.1", "localhost", "::1"):
            problem(f"{logical_id}: AWS_ENDPOINT_URL_DYNAMODB {endpoint!r} is the container's own loopback")
        elif host == "host.docker.internal" and "host.docker.internal" not in (recorder.extra_hosts or {}):
            problem(f"{logical_id}: {endpoint} needs --add-host host.docker.internal:host-gateway "
                    "(samconfig.toml add_host) on Linux")
        for name in declared:
            if not env.get(name):
                problem(f"{logical_id}: template variable {name} resolves to nothing")
        if region and env.get("AWS_REGION") != region:
            problem(f"{logical_id}: AWS_REGION is {env.get('AWS_REGION')!r}, samconfig.toml says {region!r}")
        if env.get("AWS_ACCESS_KEY_ID") != SHELL["AWS_ACCESS_KEY_ID"]:
            problem(f"{logical_id}: AWS_ACCESS_KEY_ID is not the shell's")
    if not region:
        problem("samconfig.toml: [default.local_start_api.parameters] has no region")
    # From a `sam build` output, each function's folder must hold the bootstrap SAM mounts, an
    # executable of the architecture of the container SAM would run it in.
    if Path(recorder.template_dir).resolve() != ROOT:
        for logical_id, facts in sorted(recorder.functions.items()):
            bootstrap = Path(facts["code"] or "") / "bootstrap"
            if not bootstrap.is_file():
                problem(f"{logical_id}: no bootstrap in {facts['code']}")
                continue
            head = bootstrap.read_bytes()[:20]
            machine = {0xB7: "arm64", 0x3E: "x86_64"}.get(int.from_bytes(head[18:20], "little"))
            if head[:4] != b"\x7fELF" or machine != facts["architecture"]:
                problem(f"{logical_id}: {bootstrap} is {machine or 'not an ELF executable'}, SAM would run "
                        f"it as {facts['architecture']} (build and run with the same Architecture)")


def rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def route_key_of(fixture: dict) -> str:
    if "routeKey" in fixture:
        return fixture["routeKey"]
    return f"{fixture['httpMethod']} {fixture['resource']}"


def check_routes(by_binary: dict[str, str], fixtures: list[tuple[Path, dict]]) -> None:
    routes = {}
    for route in recorder.routes:
        for method in route.methods:
            routes[f"{method} {route.path}"] = route.function_name
    print(f"  {len(routes)} routes mounted by sam local start-api")
    covered = set()
    for path, fixture in fixtures:
        name = rel(path)
        owner = by_binary.get(path.parent.name)
        if owner is None:
            problem(f"{name}: no function builds the binary {path.parent.name!r}")
            continue
        if not is_api_event(fixture):
            continue
        key = route_key_of(fixture)
        covered.add(key)
        if routes.get(key) != owner:
            where = f"routed to {routes[key]}" if key in routes else "not a route"
            problem(f"{name}: route {key!r} is {where} in the template, expected {owner}")
        status = recorder.http_results.get(path)
        seen = [i for i in recorder.invocations if i.get("fixture") == path]
        if status != 200 or not seen:
            problem(f"{name}: the HTTP request answered {status} through sam local start-api")
            continue
        invocation = seen[0]
        event = invocation["event"]
        if invocation["function"] != owner:
            problem(f"{name}: sam local start-api invoked {invocation['function']}, expected {owner}")
        raw_path = fixture.get("rawPath") or fixture.get("path")
        for field, got, want in (
            ("routeKey", event.get("routeKey"), key),
            ("rawPath", event.get("rawPath"), raw_path),
            ("pathParameters", event.get("pathParameters") or {}, fixture.get("pathParameters") or {}),
        ):
            if got != want:
                problem(f"{name}: SAM's event has {field} {got!r}, the fixture {want!r}")
        if fixture.get("version") == "2.0" and fixture["requestContext"].get("routeKey") != key:
            problem(f"{name}: requestContext.routeKey differs from routeKey")
    for key, function in sorted(routes.items()):
        # SAM local answers OPTIONS itself (CORS preflight); API Gateway does too.
        if key not in covered and not key.startswith("OPTIONS "):
            problem(f"route {key} ({function}) has no event under events/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-vars", help="env-vars file instead of samconfig.toml's")
    parser.add_argument("--template", help="template instead of SAM's default")
    parser.add_argument("--parameter-overrides", help="template parameters instead of samconfig.toml's")
    parser.add_argument("--events", default=str(EVENTS), help="events folder (default events/)")
    options = parser.parse_args()
    os.chdir(ROOT)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        os.environ.pop(name, None)
    os.environ.update(SHELL)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    extra = []
    if options.env_vars:
        extra += ["--env-vars", options.env_vars]
    if options.template:
        extra += ["--template", options.template]
    if options.parameter_overrides:
        extra += ["--parameter-overrides", options.parameter_overrides]

    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    fixtures = []
    for path in sorted(Path(options.events).resolve().glob("*/*.json")):
        try:
            fixtures.append((path, json.loads(path.read_text())))
        except ValueError as error:
            problem(f"{rel(path)}: not JSON ({error})")
    http_fixtures.extend((p, f) for p, f in fixtures if is_api_event(f))

    from samcli.commands.local.cli_common.invoke_context import InvokeContext
    from samcli.local.docker.container_client_factory import ContainerClientFactory
    from samcli.commands.local.lib.local_api_service import LocalApiService
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner

    patches = [
        # No Docker: a container client that does nothing (the runner's invoke never uses it).
        mock.patch.object(
            ContainerClientFactory, "create_client", staticmethod(lambda *a, **k: mock.MagicMock())
        ),
        mock.patch.object(LocalLambdaRunner, "invoke", fake_invoke),
        mock.patch.object(LocalApiService, "start", fake_start),
        # No AWS either: no STS call for the account id, no PyPI call for SAM's version.
        mock.patch.object(InvokeContext, "_add_account_id_to_global", lambda self: None),
        mock.patch("samcli.lib.utils.version_checker._inform_newer_version", lambda *a, **k: None),
    ]
    for p in patches:
        p.start()

    # SAM logs through handlers made at its first run, which redirecting does not reach.
    for name in ("samcli.commands.local.lib.local_lambda", "samcli.local.apigw", "samcli.commands.local"):
        logging.getLogger(name).setLevel(logging.WARNING)
    print("==> sam local start-api " + " ".join(extra))
    with quiet():
        run_sam(["local", "start-api", *extra])
    if recorder.template_dir:
        print(f"  template: {rel(Path(recorder.template_dir)) / 'template.yaml'}, "
              f"env-vars: {options.env_vars or 'samconfig.toml'}")
    if not problems:
        check_environment(samconfig)

    functions = recorder.functions
    by_binary = {facts["binary"]: logical_id for logical_id, facts in functions.items()}
    if functions:
        check_routes(by_binary, fixtures)

    print("==> sam local invoke <function> -e <event>, every event " + " ".join(extra))
    for path, fixture in fixtures:
        owner = by_binary.get(path.parent.name)
        if owner is None:
            continue
        current["fixture"] = path
        before = len(recorder.invocations)
        with quiet():
            run_sam(["local", "invoke", owner, "--event", str(rel(path)), *extra])
        seen = recorder.invocations[before:]
        if len(seen) != 1 or seen[0]["event"] != fixture:
            problem(f"{rel(path)}: sam local invoke {owner} did not pass the event through")
            continue
        want = functions[owner]["env"]
        got = seen[0]["env"]
        if got != want:
            diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            problem(f"{rel(path)}: sam local invoke gives {owner} another environment "
                    f"than start-api ({', '.join(diff)}): samconfig.toml's local_invoke section")
    for p in reversed(patches):
        p.stop()

    if problems:
        print(f"sam local wiring: {len(problems)} problem(s)")
        return 1
    print(f"sam local wiring: {len(functions)} functions, {len(fixtures)} events, all consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks docker-compose.yml without a Docker engine: valid YAML, and the structure compose requires
(every service has an image or a build, dependencies and volumes exist, the stores have healthchecks and
volumes, images are pinned). Uses `docker compose config` as well when a compose plugin is installed."""
import shutil
import subprocess
import sys

import yaml

path = sys.argv[1] if len(sys.argv) > 1 else "docker-compose.yml"
with open(path) as f:
    doc = yaml.safe_load(f)

problems = []
services = doc.get("services") or {}
volumes = set((doc.get("volumes") or {}).keys())
if not services:
    problems.append("no services")
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        problems.append(f"{name}: needs image or build")
    image = svc.get("image", "")
    if image and (":" not in image or image.endswith(":latest")):
        problems.append(f"{name}: pin the image version ({image})")
    deps = svc.get("depends_on") or {}
    for dep in deps:
        if dep not in services:
            problems.append(f"{name}: depends on unknown service {dep}")
    for mount in svc.get("volumes") or []:
        source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
        if source and not source.startswith((".", "/")) and source not in volumes:
            problems.append(f"{name}: volume {source} is not declared")
    env = svc.get("environment")
    if env is not None and not isinstance(env, (dict, list)):
        problems.append(f"{name}: environment must be a map or list")
for store in ("redis", "postgres", "clickhouse"):
    svc = services.get(store)
    if not svc:
        problems.append(f"missing store service {store}")
        continue
    if "healthcheck" not in svc:
        problems.append(f"{store}: needs a healthcheck")
    if not svc.get("volumes"):
        problems.append(f"{store}: needs a volume")
for needed in ("hub", "app", "worker-events", "worker-sessions", "worker-devices"):
    if needed not in services:
        problems.append(f"missing service {needed}")

if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
    result = subprocess.run(["docker", "compose", "-f", path, "config", "-q"], capture_output=True, text=True)
    if result.returncode != 0:
        problems.append("docker compose config: " + result.stderr.strip())

for p in problems:
    print(f"compose: {p}", file=sys.stderr)
print(f"{path}: {len(services)} services, {'ok' if not problems else f'{len(problems)} problems'}")
sys.exit(1 if problems else 0)

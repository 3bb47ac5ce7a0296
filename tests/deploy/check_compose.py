#!/usr/bin/env python3
"""deploy/compose: deploy/compose.yaml describes the cluster of deploy/topology.txt.

Usage: check_compose.py PROMTOOL SOURCE_DIR

The composition cannot run here (no container runtime); this checks what can be checked
without one:
- compose.yaml is valid YAML (anchors and merge keys resolved) with services, networks,
  volumes and secrets mappings;
- its services are exactly topology.txt's services, its networks exactly the tiers;
- each service joins exactly the networks topology.txt gives it, and the private and isolated
  networks are internal (no route out);
- only a service of the public tier publishes a port, and it publishes only its api port;
- every named volume and secret a service uses is declared, every bind-mounted file or
  directory under deploy/ that is not an operator's secret exists in the tree;
- an image is set for each service, and the payd ones build from deploy/Dockerfile, whose last
  stage has no compiler and runs as a non-root user;
- compose/prometheus.yml passes `promtool check config` next to payd.rules.yml.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def topology(path):
    nets, services = [], {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            w = line.split()
            if w[0] == "network" and len(w) == 2:
                nets.append(w[1])
            elif w[0] == "service" and len(w) == 5:
                ports = {}
                for p in w[4].split(","):
                    num, _, purpose = p.partition("/")
                    ports[purpose] = int(num)
                services[w[1]] = {"tier": w[2], "networks": w[3].split(","), "ports": ports}
            else:
                fail("%s:%d: expected 'network NAME' or 'service NAME TIER NETWORKS PORTS'" % (path, n))
    for name, s in services.items():
        if s["tier"] not in nets or any(x not in nets for x in s["networks"]) or s["tier"] not in s["networks"]:
            fail("topology.txt: service %s: tier and networks must be declared networks, its tier among them" % name)
    return nets, services


def main():
    promtool, src = sys.argv[1], sys.argv[2]
    deploy = os.path.join(src, "deploy")
    nets, want = topology(os.path.join(deploy, "topology.txt"))
    try:
        with open(os.path.join(deploy, "compose.yaml"), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        fail("compose.yaml is not valid YAML: %s" % e)
    for key in ("services", "networks", "volumes", "secrets"):
        if not isinstance(doc.get(key), dict):
            fail("compose.yaml: no %s mapping" % key)
    got = doc["services"]
    if set(got) != set(want):
        fail("compose.yaml services %s differ from topology.txt: missing %s, extra %s"
             % (sorted(got), sorted(set(want) - set(got)), sorted(set(got) - set(want))))
    if set(doc["networks"]) != set(nets):
        fail("compose.yaml networks %s are not the tiers %s" % (sorted(doc["networks"]), nets))
    for n in nets:
        internal = bool((doc["networks"][n] or {}).get("internal"))
        if internal != (n != "public"):
            fail("network %s: internal must be %s" % (n, n != "public"))

    for name, s in sorted(got.items()):
        t = want[name]
        if sorted(s.get("networks") or []) != sorted(t["networks"]):
            fail("service %s joins %s, topology.txt says %s" % (name, s.get("networks"), t["networks"]))
        if not s.get("image"):
            fail("service %s has no image" % name)
        ports = s.get("ports") or []
        if t["tier"] != "public" and ports:
            fail("service %s (tier %s) publishes %s: only the public tier may" % (name, t["tier"], ports))
        if t["tier"] == "public":
            api = t["ports"].get("api")
            published = [str(p).rsplit(":", 1)[-1] for p in ports]
            if published != [str(api)]:
                fail("service %s publishes %s; it should publish its api port %s alone" % (name, ports, api))
        for v in s.get("volumes") or []:
            source = v.split(":", 1)[0]
            if source.startswith("."):
                path = os.path.normpath(os.path.join(deploy, source))
                if "/secrets" not in path and not os.path.exists(path):
                    fail("service %s mounts %s, which is not in the tree" % (name, source))
            elif source not in doc["volumes"]:
                fail("service %s uses volume %s, not declared" % (name, source))
        for sec in s.get("secrets") or []:
            if sec not in doc["secrets"]:
                fail("service %s uses secret %s, not declared" % (name, sec))
        build = s.get("build")
        if name.startswith("payd") and (not build or build.get("dockerfile") != "deploy/Dockerfile"):
            fail("service %s does not build from deploy/Dockerfile" % name)

    with open(os.path.join(deploy, "Dockerfile"), encoding="utf-8") as f:
        stages = re.split(r"(?m)^FROM ", f.read())
    final = stages[-1]
    if len(stages) < 3 or not final.startswith("debian:bookworm-slim"):
        fail("Dockerfile: expected a build stage and a final debian:bookworm-slim stage")
    if re.search(r"\b(build-essential|gcc|clang|cmake|-dev)\b", final):
        fail("Dockerfile: the final stage installs a compiler or -dev package")
    users = re.findall(r"(?m)^USER\s+(\S+)", final)
    if not users or users[-1] in ("root", "0"):
        fail("Dockerfile: the final stage must end as a non-root USER")

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(deploy, "compose", "prometheus.yml"), tmp)
        shutil.copy(os.path.join(deploy, "prometheus", "payd.rules.yml"), tmp)
        r = subprocess.run([promtool, "check", "config", os.path.join(tmp, "prometheus.yml")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("compose/prometheus.yml: " + r.stdout + r.stderr)
    print("deploy/compose.yaml: %d services, %d networks as in topology.txt; Dockerfile and "
          "compose/prometheus.yml ok (not run: no container runtime here)" % (len(got), len(nets)))


main()

#!/usr/bin/env python3
"""Differential cases beyond the recorded ones: vary them, let the original decide.

    python3 vary.py check ORIGINAL_SCRIPT
        replays every case of tests/data/oracle/ and tests/data/oracle-variants/
        through standin.py and reports any whose decisions, crash or checks
        differ from the file (none should: the recorded ones are what makes
        the stand-in, and so the variants, trustworthy)
    python3 vary.py make ORIGINAL_SCRIPT OUT_DIR --count N --seed S [--changes K]
        writes N variants of the recorded cases into OUT_DIR, each with one
        to K (default 4) random changes, decided by the original
    python3 vary.py scratch ORIGINAL_SCRIPT OUT_DIR --count N --seed S [--max-deployments D]
        writes N scenarios made from nothing recorded (up to four of eight types configured,
        zero to D deployments, default 16; a status up, down or failing),
        decided by the original

Then replay them through the engine, in both modes and check scopes:

    HP_ORACLE_CASES=OUT_DIR cargo test --test it oracle::

ORIGINAL_SCRIPT is NixOS/hydra-provisioner's `hydra-provisioner` at commit
ecbfc27 (git blob 5132a30e; standin.py checks the hash), for example
`git -C hydra-provisioner show ecbfc27:hydra-provisioner > original.py`.
"""
import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED = os.path.join(HERE, "..", "..", "tests", "data", "oracle")
VARIANTS = os.path.join(HERE, "..", "..", "tests", "data", "oracle-variants")
STATES = ["UP", "UP", "UP", "STOPPED", "MISSING", "STARTING", "RESCUE", "UNKNOWN", "UNREACHABLE", "STOPPING"]


def decide(script, case, scratch):
    """The original's (expected, crash, checked) for `case`."""
    with open(scratch, "w", encoding="utf-8") as f:
        json.dump(case, f)
    out = subprocess.run([sys.executable, os.path.join(HERE, "standin.py"), script, scratch],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("standin.py failed on %s:\n%s" % (case["case"], out.stderr))
    return json.loads(out.stdout)


def cases_in(folder):
    for n in sorted(n for n in os.listdir(folder) if n.endswith(".json")):
        with open(os.path.join(folder, n), encoding="utf-8") as f:
            yield json.load(f)


def recorded():
    return cases_in(RECORDED)


def check(args):
    scratch = os.path.join(args.scratch, "case.json")
    differing = 0
    for case in list(recorded()) + list(cases_in(VARIANTS)):
        got = decide(args.script, case, scratch)
        for key in ("expected", "crash", "checked"):
            if got[key] != case[key]:
                differing += 1
                print("%s: %s differs: %s" % (case["case"], key, json.dumps(got[key])))
                break
    print("%d cases differ" % differing)
    return 1 if differing else 0


class Variation:
    """Random changes to one case, of the kinds the recorded cases vary in."""

    def __init__(self, rng, case):
        self.rng, self.case = rng, case
        self.status = None
        if case["status"] is not None:
            try:
                self.status = json.loads(case["status"])
            except ValueError:
                pass

    def now(self):
        return float(self.case["meta"]["now_arg"])

    def time(self):
        rng, meta = self.rng, self.case["meta"]
        starts = [d["startTime"] for d in self.case["deployments"] if d.get("startTime")]
        if starts and rng.random() < 0.6:
            # Near a paid-time threshold of some machine's billing hour.
            s = rng.choice(starts)
            hours = max(1, int((self.now() - s) // 3600) + rng.choice([0, 1]))
            now = s + hours * 3600 - rng.choice([1800, 600, 0, 3600]) + rng.choice([-1, 0, 1, 0.5, -0.5, 2, -30, 30])
        else:
            now = self.now() + rng.choice([-7200, -1800, -600, -1, 1, 600, 1800, 3600, 0.25])
        meta["now_arg"] = str(int(now)) if now == int(now) else repr(now)

    def settings(self):
        rng = self.rng
        types = self.case["config"].setdefault("systemTypes", {})
        if not types:
            return
        tc = types[rng.choice(sorted(types))]
        key = rng.choice(["runnablesPerMachine", "ignoredRunnables", "minMachines", "maxMachines",
                          "gracePeriod", "stopOnIdle", "maxJobs", "speedFactor", None])
        values = {"runnablesPerMachine": [1, 2, 3, 5, 10, 20], "ignoredRunnables": [0, 1, 5, 20],
                  "minMachines": [0, 1, 2, 3, 5], "maxMachines": [0, 1, 2, 3, 5],
                  "gracePeriod": [0, 1, 60, 600, 1800, 3600], "maxJobs": [1, 2, 4, 8], "speedFactor": [1, 2, 4]}
        if key is None:
            tc.pop(rng.choice(sorted(values)), None)
        elif key == "stopOnIdle":
            tc[key] = not tc.get(key, False)
        else:
            tc[key] = rng.choice(values[key])

    def queue(self):
        rng, status = self.rng, self.status
        if not isinstance(status, dict) or status.get("status") != "up":
            return
        r = rng.random()
        if r < 0.5:
            names = sorted(set(status.setdefault("machineTypes", {})) | set(self.case["config"].get("systemTypes") or {}))
            if names:
                entry = status["machineTypes"].setdefault(rng.choice(names), {"runnable": 0, "running": 0})
                entry["runnable"] = rng.choice([0, 1, 2, 5, 9, 10, 11, 21, 40, 100])
                if rng.random() < 0.3:
                    entry["lastActive"] = rng.choice(
                        [0, int(status.get("uptime", 0)), int(self.now()) - rng.choice([10, 100, 700, 2000, 4000])])
        elif r < 0.85:
            addresses = [d["publicIpv4"] for d in self.case["deployments"] if d.get("publicIpv4")]
            if addresses:
                status.setdefault("machines", {})["root@" + rng.choice(addresses)] = {
                    "currentJobs": rng.choice([0, 0, 1, 2, 4])}
        else:
            status["uptime"] = rng.choice([0, 60, 1000, 1799, 1800, 5000, 100000])

    def fleet(self):
        rng, deployments = self.rng, self.case["deployments"]
        if not deployments:
            return
        d = rng.choice(deployments)
        r = rng.random()
        if d["machine"] and d["state"] is not None and r < 0.45:
            s = rng.choice(STATES)
            d["state"] = s
            d["state_after_check"] = s if s != "UP" or rng.random() < 0.7 else rng.choice(
                ["STARTING", "UNREACHABLE", "MISSING", "STOPPED"])
        elif d["machine"] and r < 0.75:
            now = int(self.now())
            d["startTime"] = rng.choice([None, now - rng.randint(0, 20000), now - 3600 * rng.randint(1, 5) + rng.choice(
                [1800, 600, 1799, 599, 1801, 601, 0])])
        elif r < 0.85:
            types = sorted(self.case["config"].get("systemTypes") or {})
            if types:
                d["type"] = rng.choice(types)
        elif r < 0.93:
            d["failures"] = {} if rng.random() < 0.4 else {
                rng.choice(["deploy", "ssh", "stop", "destroy", "check"]): "EC2 API error: RequestLimitExceeded"}
        elif r < 0.97 and d["machine"]:
            d["publicIpv4"] = None
        else:
            # A new name, as every recorded case names each deployment once
            # (two with one name are held on purpose: README.md).
            names = {e["name"] for e in deployments}
            name, uuid = (d["name"] or "x") + "-b", d["uuid"] + "-b"
            while name in names:
                name, uuid = name + "-b", uuid + "-b"
            twin = copy.deepcopy(d)
            twin.update(index=len(deployments), uuid=uuid, name=name,
                        publicIpv4="54.1.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254)))
            deployments.append(twin)

    def apply(self, changes):
        for _ in range(self.rng.randint(1, changes)):
            self.rng.choice([self.time, self.settings, self.queue, self.fleet])()
        if self.status is not None:
            self.case["status"] = json.dumps(self.status, sort_keys=True)
        self.case["meta"]["status_fails"] = self.case["status"] is None


# The scratch scenarios' vocabulary. Each scenario spells the two-feature
# type one way, as every recorded case does (ARCHITECTURE.md, "Spelling").
SCRATCH_TYPES = ["x86_64-linux", "aarch64-linux", "x86_64-linux:big-parallel,kvm", "x86_64-linux:kvm",
                 "x86_64-darwin", "i686-linux", "x86_64-linux:benchmark", "aarch64-linux:kvm"]
SCRATCH_STATUS_TYPES = ["x86_64-linux", "aarch64-linux", "x86_64-linux:big-parallel,kvm", "x86_64-linux:kvm",
                        "i686-linux", "i686-linux:kvm", "x86_64-darwin", "armv7l-linux", "x86_64-linux:benchmark"]
SCRATCH_SETTINGS = [("runnablesPerMachine", [1, 2, 5, 10, 20]), ("ignoredRunnables", [0, 3, 50]),
                    ("minMachines", [0, 1, 2, 3]), ("maxMachines", [0, 1, 2, 3, 6]),
                    ("gracePeriod", [0, 60, 1800, 7200]), ("stopOnIdle", [True, False]),
                    ("maxJobs", [1, 4]), ("speedFactor", [1, 2]), ("sshKey", ["/root/.ssh/id"])]


def scenario(rng, name, max_deployments):
    """A case made from nothing recorded, not yet decided."""
    two = rng.choice(["x86_64-linux:big-parallel,kvm", "x86_64-linux:kvm,big-parallel"])
    spell = lambda t: two if t == "x86_64-linux:big-parallel,kvm" else t
    types = [spell(t) for t in SCRATCH_TYPES]
    status_types = [spell(t) for t in SCRATCH_STATUS_TYPES]
    pick = lambda xs, k: rng.sample(xs, min(k, len(xs)))
    now = 1_600_000_000 + rng.randint(0, 10_000_000) + (0.5 if rng.random() < 0.1 else 0)
    tag = rng.choice(["hydra-provisioned", "hp", "nixos-builders"])
    config = {"systemTypes": {}}
    if tag != "hydra-provisioned" or rng.random() < 0.3:
        config["tag"] = tag
    for t in pick(types, rng.randint(0, 4)):
        settings = {"nixopsExpr": "/etc/hp/deployment.nix"}
        for key, values in SCRATCH_SETTINGS:
            if rng.random() < 0.5:
                settings[key] = rng.choice(values)
        config["systemTypes"][t] = settings
    if rng.random() < 0.3:
        config["updateCommand"] = ["/run/current-system/sw/bin/hp-update-machines"]
    deployments, addresses, names = [], [], set()
    for k in range(rng.randint(0, max_deployments)):
        ours = rng.random() < 0.85
        d_name = "%s-%d" % (tag if rng.random() < 0.9 else "other", rng.randint(0, 12))
        while d_name in names:
            d_name = "%s-%d" % (tag, rng.randint(0, 40))
        names.add(d_name)
        machine = rng.random() < 0.92
        state = rng.choice(STATES) if machine else None
        after = state if state != "UP" or rng.random() < 0.75 else rng.choice(
            ["STARTING", "UNREACHABLE", "MISSING", "STOPPED"])
        address = None
        if machine and rng.random() < 0.93:
            address = "54.%d.%d.%d" % (rng.randint(1, 250), rng.randint(0, 255), rng.randint(1, 254))
            addresses.append(address)
        start = None if rng.random() < 0.2 else int(now) - rng.choice([
            rng.randint(0, 30000),
            3600 * rng.randint(0, 6) + rng.choice([1800, 600, 1799, 601, 0, 1, -1, 599, 1801]),
            -100])
        failures = {}
        if rng.random() < 0.15:
            failures[rng.choice(["deploy", "ssh", "stop", "destroy", "check"])] = "EC2 API error: RequestLimitExceeded"
        host_key = None if rng.random() < 0.1 else "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI%04d root@machine" % k
        d_type = rng.choice(types + list(config["systemTypes"]) * 2) if rng.random() < 0.97 else None
        deployments.append({
            "failures": failures, "index": k, "ipAfterDeploy": "192.0.2.%d" % (k + 1), "machine": machine,
            "name": d_name, "publicHostKey": host_key, "publicIpv4": address, "startTime": start,
            "state": state, "state_after_check": after, "tag": tag if ours else "other", "type": d_type,
            "uuid": "%s-%d" % (name, k)})
    status = None
    status_kind = rng.choice(["up"] * 8 + ["down", "fails"])
    if status_kind != "fails":
        status = {"status": status_kind, "uptime": rng.choice([0, 100, 1700, 1800, 5000, 100000]),
                  "machineTypes": {}, "machines": {}}
        if status_kind == "up":
            for t in pick(status_types + list(config["systemTypes"]), rng.randint(0, 4)):
                entry = {"runnable": rng.choice([0, 1, 3, 9, 10, 11, 30, 100]), "running": rng.randint(0, 5)}
                if rng.random() < 0.3:
                    entry["lastActive"] = rng.choice([0, int(now) - rng.randint(0, 10000)])
                status["machineTypes"][t] = entry
            # At least one machine, as in every recorded up status (README.md).
            status["machines"]["root@static-builder.example.org"] = {"currentJobs": rng.choice([0, 2])}
            for address in addresses:
                if rng.random() < 0.6:
                    status["machines"]["root@" + address] = {"currentJobs": rng.choice([0, 0, 1, 3])}
    via = {"command": config["updateCommand"]} if config.get("updateCommand") else {
        "path": "/var/lib/hydra/provisioner/machines"}
    return {
        "case": name, "config": config, "deployments": deployments, "new_deployments": [],
        "status": None if status is None else json.dumps(status, sort_keys=True),
        "meta": {"crash_class": None, "features": [], "machines_file_via": via,
                 "now_arg": repr(now) if isinstance(now, float) else str(now), "status_fails": status is None,
                 "update_fails": bool(config.get("updateCommand")) and rng.random() < 0.1},
    }


def write_decided(args, noun, cases):
    """Lets the original decide each of `cases` and writes them into `args.out`."""
    os.makedirs(args.out, exist_ok=True)
    scratch = os.path.join(args.scratch, "case.json")
    for case in cases:
        got = decide(args.script, case, scratch)
        case.update(got)
        case["meta"]["crash_class"] = got["crash"] and got["crash"]["class"]
        with open(os.path.join(args.out, case["case"] + ".json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(case, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")
    print("%d %s in %s" % (args.count, noun, args.out))
    return 0


def scratch(args):
    rng = random.Random(args.seed)
    cases = (scenario(rng, "scratch-%d-%05d" % (args.seed, i), args.max_deployments) for i in range(args.count))
    return write_decided(args, "scenarios", cases)


def variants(rng, base, args):
    for i in range(args.count):
        origin = rng.choice(base)
        case = copy.deepcopy(origin)
        Variation(rng, case).apply(args.changes)
        case["case"] = "variant-%d-%05d" % (args.seed, i)
        case["varied_from"] = origin["case"]
        yield case


def make(args):
    rng = random.Random(args.seed)
    return write_decided(args, "variants", variants(rng, list(recorded()), args))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scratch", default=None, help="where a case is written for standin.py (default: a new temporary folder)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="replay the recorded cases through the stand-in")
    c.add_argument("script")
    writers = [("make", "write variants decided by the original", "--changes", 4),
               ("scratch", "write scenarios made from nothing recorded, decided by the original",
                "--max-deployments", 16)]
    for name, help_text, option, default in writers:
        w = sub.add_parser(name, help=help_text)
        w.add_argument("script")
        w.add_argument("out")
        w.add_argument("--count", type=int, default=100)
        w.add_argument("--seed", type=int, default=1)
        w.add_argument(option, type=int, default=default)
    args = p.parse_args()
    args.scratch = args.scratch or tempfile.mkdtemp(prefix="oracle-variants-")
    return {"check": check, "make": make, "scratch": scratch}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

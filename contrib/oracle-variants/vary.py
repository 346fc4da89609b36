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
            twin = copy.deepcopy(d)
            twin.update(index=len(deployments), uuid=d["uuid"] + "-b", name=(d["name"] or "x") + "-b",
                        publicIpv4="54.1.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254)))
            deployments.append(twin)

    def apply(self, changes):
        for _ in range(self.rng.randint(1, changes)):
            self.rng.choice([self.time, self.settings, self.queue, self.fleet])()
        if self.status is not None:
            self.case["status"] = json.dumps(self.status, sort_keys=True)
        self.case["meta"]["status_fails"] = self.case["status"] is None


def make(args):
    rng = random.Random(args.seed)
    base = list(recorded())
    os.makedirs(args.out, exist_ok=True)
    scratch = os.path.join(args.scratch, "case.json")
    for i in range(args.count):
        origin = rng.choice(base)
        case = copy.deepcopy(origin)
        Variation(rng, case).apply(args.changes)
        case["case"] = "variant-%d-%05d" % (args.seed, i)
        case["varied_from"] = origin["case"]
        got = decide(args.script, case, scratch)
        case.update(got)
        case["meta"]["crash_class"] = got["crash"] and got["crash"]["class"]
        with open(os.path.join(args.out, case["case"] + ".json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(case, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")
    print("%d variants in %s" % (args.count, args.out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scratch", default=None, help="where a case is written for standin.py (default: a new temporary folder)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="replay the recorded cases through the stand-in")
    c.add_argument("script")
    m = sub.add_parser("make", help="write variants decided by the original")
    m.add_argument("script")
    m.add_argument("out")
    m.add_argument("--count", type=int, default=100)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--changes", type=int, default=4)
    args = p.parse_args()
    args.scratch = args.scratch or tempfile.mkdtemp(prefix="oracle-variants-")
    return check(args) if args.command == "check" else make(args)


if __name__ == "__main__":
    sys.exit(main())

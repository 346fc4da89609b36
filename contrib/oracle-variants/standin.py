#!/usr/bin/env python3
"""Run the original hydra-provisioner script on one differential case.

    python3 standin.py ORIGINAL_SCRIPT CASE.json

CASE.json is a case in the format of tests/data/oracle/ (README.md there);
its `expected`, `crash` and `checked` are ignored. The script runs in this
process against a stand-in for the NixOps Python API that plays the case's
facts: each deployment's `failures` make that call raise, `check()` finds
`state_after_check`, `next_charge_time()` is NixOps's EC2 rule (the launch
time plus whole hours), a successful deploy gives a machine without an
address its `ipAfterDeploy`, and the k-th creation gets uuid `new-k`, the
address 198.51.100.<k+1> and a host key ending in `INEW<k>` (unless the
case's `new_deployments[k]` says otherwise). `time.time()` is the case's
time, the status command prints the case's status, `nix-instantiate` prints
its config, and the update command fails if the case says so.

The script is Python 2. Five edits, each within its line so that line
numbers (which name a crash's phase) stay the same, give Python 3 the same
behaviour: the status's types are listed before the loop that deletes from
them; types are walked sorted and deployment sets in insertion order (the
order the recorded cases were made with); the host key and the temporary
machines file get bytes.

Prints {"expected", "crash", "checked"} in the case format.
"""
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
import types

SCRIPT_BLOB = "5132a30e3b55de4d8d52cfb35cda071842016eba"
KEEP_ALIVE = ["touch", "/run/keep-alive"]

# (first line, last line, phase) of the script.
PHASES = ((1, 91, "read"), (92, 167, "per-type"), (168, 220, "keep-rules"), (221, 235, "deploy"),
          (236, 278, "machines-file"), (279, 304, "expire"))
# Crash classes, first match wins: (class, exception types or None, lines or None, message regex or None).
CRASHES = (
    ("unconfigured-type", {"KeyError"}, {245}, None),
    ("no-ip", None, {196, 255}, r"does not have a public IPv4 address"),
    ("zero-division", {"ZeroDivisionError"}, None, None),
    ("check-failed", None, {145}, None),
    ("update-failed", {"CalledProcessError"}, {275}, None),
    ("stop-failed", None, {298}, None),
    ("destroy-failed", None, {303}, None),
    ("delete-failed", None, {304}, None),
    ("status-unparsable", {"ValueError", "JSONDecodeError"}, {69}, None),
    ("status-malformed", {"KeyError", "TypeError", "AttributeError"},
     {73, 78, 79, 81, 83, 85, 96, 102, 196, 211, 212}, None),
    ("config-malformed", {"KeyError", "TypeError", "AttributeError", "ValueError"},
     {56, 58, 67, 88, 103, 104, 105, 106, 159, 160, 182, 257, 258, 259, 293}, None),
    ("empty-column", {"AssertionError"}, {265}, None),
    ("exit", {"SystemExit"}, None, None),
)
# Line edits: (line, old, new).
EDITS = (
    (78, 'status["machineTypes"].keys()', 'list(status["machineTypes"].keys())'),
    (88, "system_types = set(status", "system_types = sorted(set(status"),
    (88, 'config["systemTypes"].keys()))', 'config["systemTypes"].keys())))'),
    (262, "base64.b64encode(m.public_host_key)", "base64.b64encode(m.public_host_key.encode()).decode()"),
    (273, "machines_tmp.write(machines_file)", "machines_tmp.write(machines_file.encode())"),
) + tuple((n, "set({})", "_InsertionOrderedSet()") for n in (92, 93, 169, 170, 222))
STATES = ["UNKNOWN", "MISSING", "STARTING", "UP", "STOPPING", "STOPPED", "UNREACHABLE", "RESCUE"]


class _InsertionOrderedSet:
    def __init__(self):
        self._items = {}

    def add(self, x):
        self._items[x] = None

    def __contains__(self, x):
        return x in self._items

    def __iter__(self):
        return iter(list(self._items))


class Recorder:
    """What the script did: the NixOps calls in order, and the machines file."""

    def __init__(self):
        self.calls = []
        self.machines_file = None


def main(script_path, case_path):
    with open(case_path, encoding="utf-8") as f:
        case = json.load(f)
    source = open(script_path, encoding="utf-8").read()
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=source.encode(), capture_output=True,
                          check=True).stdout.decode().strip()
    if blob != SCRIPT_BLOB:
        sys.exit("standin.py: %s is blob %s, not the original's %s" % (script_path, blob, SCRIPT_BLOB))
    rec = Recorder()
    now = float(case["meta"]["now_arg"])
    if now == int(now) and "." not in case["meta"]["now_arg"]:
        now = int(now)
    install_nixops(case, rec, now)
    error = run_script(source, case, rec, now)
    print(json.dumps(normalise(rec, error), sort_keys=True))


def install_nixops(case, rec, now):
    State = types.SimpleNamespace(**{s: i for i, s in enumerate(STATES)})

    class Ssh:
        def __init__(self, machine):
            self.machine = machine

        def run_command(self, command):
            host = self.machine.get_ssh_name()
            rec.calls.append(("ssh", self.machine.depl.ident(), command, host))
            if "ssh" in self.machine.depl.failures:
                raise Exception(self.machine.depl.failures["ssh"])

    class Machine:
        def __init__(self, depl, state, after, start, ip, key):
            self.depl, self.state, self.after = depl, state, after
            self.start_time, self.ip, self.public_host_key = start, ip, key
            self.ssh = Ssh(self)

        def check(self):
            if "check" in self.depl.failures:
                rec.calls.append(("check", self.depl.ident(), None))
                raise Exception(self.depl.failures["check"])
            self.state = self.after
            rec.calls.append(("check", self.depl.ident(), STATES[self.state]))

        def next_charge_time(self):
            if not self.start_time:
                return None
            return self.start_time + 3600 * int(math.ceil((time.time() - self.start_time) / 3600.0))

        def get_ssh_name(self):
            if not self.ip:
                raise Exception("EC2 machine ‘machine’ does not have a public IPv4 address (yet)")
            return self.ip

    class Deployment:
        def __init__(self, uuid, name, args, failures, ip_after=None, new_machine=None):
            self.uuid, self._name, self.args, self.failures = uuid, name, args, failures
            self.ip_after, self.new_machine = ip_after, new_machine
            self.machines, self.nix_exprs, self.nix_path, self.extra_nix_path = {}, [], [], []
            self.logger = types.SimpleNamespace(set_autoresponse=lambda answer: None)

        def ident(self):
            return self._name if self._name is not None else self.uuid

        @property
        def name(self):
            return self._name

        @name.setter
        def name(self, value):
            rec.calls.append(("set_name", self.ident(), value))
            self._name = value

        def set_argstr(self, key, value):
            rec.calls.append(("set_argstr", self.ident(), key, value))
            self.args[key] = '"%s"' % value

        def deploy(self, check=False):
            rec.calls.append(("deploy", self.ident()))
            if "deploy" in self.failures:
                raise Exception(self.failures["deploy"])
            m = self.machines.get("machine")
            if m is None:
                ip, key = self.new_machine
                self.machines["machine"] = Machine(self, State.UP, State.UP, int(time.time()), ip, key)
            else:
                m.ip = m.ip or self.ip_after
                m.state = State.UP

        def stop_machines(self):
            rec.calls.append(("stop", self.ident()))
            if "stop" in self.failures:
                raise Exception(self.failures["stop"])

        def destroy_resources(self):
            rec.calls.append(("destroy", self.ident()))
            if "destroy" in self.failures:
                raise Exception(self.failures["destroy"])

        def delete(self):
            rec.calls.append(("delete", self.ident()))

    deployments = []
    for d in case["deployments"]:
        args = {k: '"%s"' % d[k] for k in ("type", "tag") if d.get(k) is not None}
        depl = Deployment(d["uuid"], d["name"], args, dict(d.get("failures") or {}), d.get("ipAfterDeploy"))
        if d["machine"] and d["state"] is not None:
            depl.machines["machine"] = Machine(depl, STATES.index(d["state"]), STATES.index(d["state_after_check"]),
                                               d.get("startTime"), d.get("publicIpv4"), d.get("publicHostKey"))
        deployments.append(depl)
    overrides = case.get("new_deployments") or []

    class StateFile:
        def __init__(self, path):
            self.created = 0

        def get_all_deployments(self):
            return list(deployments)

        def create_deployment(self):
            k = self.created
            self.created += 1
            o = overrides[k] if k < len(overrides) else {}
            failures = {"deploy": o["deploy_fails"]} if o.get("deploy_fails") else {}
            new_machine = (o.get("publicIpv4", "198.51.100.%d" % (k + 1)),
                           o.get("publicHostKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW%d" % k))
            depl = Deployment(o.get("uuid", "new-%d" % k), None, {}, failures, new_machine=new_machine)
            rec.calls.append(("create", depl.uuid))
            return depl

    def write_file(path, text):
        rec.calls.append(("write",))
        rec.machines_file = text

    modules = {
        "resources": {"ResourceState": State},
        "statefile": {"StateFile": StateFile, "get_default_state_file": lambda: "deployments.nixops"},
        "util": {"write_file": write_file, "abs_nix_path": lambda x: x},
    }
    nixops = types.ModuleType("nixops")
    sys.modules["nixops"] = nixops
    for name, attrs in modules.items():
        module = types.ModuleType("nixops." + name)
        module.__dict__.update(attrs)
        setattr(nixops, name, module)
        sys.modules["nixops." + name] = module

    config_bytes = json.dumps(case["config"]).encode()

    def check_output(command, *args, **kwargs):
        if command[:1] == ["nix-instantiate"]:
            return config_bytes
        if case["status"] is None:
            raise subprocess.CalledProcessError(1, command)
        return case["status"].encode()

    def check_call(command, stdin=None, **kwargs):
        rec.calls.append(("write",))
        rec.machines_file = stdin.read().decode()
        if case["meta"].get("update_fails"):
            raise subprocess.CalledProcessError(1, command)
        return 0

    subprocess.check_output, subprocess.check_call = check_output, check_call
    time.time = lambda: now


def run_script(source, case, rec, now):
    lines = source.split("\n")
    for n, old, new in EDITS:
        assert old in lines[n - 1], "line %d of the script is not what the edits expect" % n
        lines[n - 1] = lines[n - 1].replace(old, new, 1)
    code = compile("\n".join(lines), "hydra-provisioner", "exec")
    scope = {"__name__": "__main__", "__file__": "/hydra-provisioner/bin/hydra-provisioner",
             "_InsertionOrderedSet": _InsertionOrderedSet}
    sys.argv = ["hydra-provisioner", "conf.nix"]
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    try:
        exec(code, scope)
    except BaseException as e:  # noqa: BLE001 (a crash of the script is a result)
        line = None
        for frame in traceback.extract_tb(e.__traceback__):
            if frame.filename == "hydra-provisioner":
                line = frame.lineno
        return type(e).__name__, str(e), line
    finally:
        sys.stderr = stderr
    return None


def normalise(rec, error):
    created, handles = {}, {}
    created_in_pass = set()
    for call in rec.calls:
        if call[0] == "create":
            handles[call[1]] = None
        elif call[0] == "set_name" and call[1] in handles:
            handles[call[2]] = handles.pop(call[1])
            created_in_pass.add(call[2])
        elif call[0] == "set_argstr" and call[2] == "type" and call[1] in created_in_pass:
            t = call[3]
            names = created.setdefault(t, [])
            handles[call[1]] = "+" + t + ("#%d" % len(names) if names else "")
            names.append(call[1])
    ident = lambda name: handles.get(name) or name
    sets = {k: set() for k in ("deployed", "touched", "stopped", "destroyed", "deleted")}
    checked, host_handles = {}, {}
    for call in rec.calls:
        kind = call[0]
        if kind in ("deploy", "stop", "destroy", "delete"):
            sets[{"deploy": "deployed", "stop": "stopped", "destroy": "destroyed", "delete": "deleted"}[kind]].add(
                ident(call[1]))
        elif kind == "ssh" and call[2] == KEEP_ALIVE:
            sets["touched"].add(ident(call[1]))
            if ident(call[1]).startswith("+"):
                host_handles[call[3]] = ident(call[1])
        elif kind == "check":
            checked[ident(call[1])] = call[2]
    rows = None
    if rec.machines_file is not None:
        rows = []
        for line in rec.machines_file.splitlines():
            cols = line.split(" ")
            host = cols[0][len("root@"):] if cols[0].startswith("root@") else None
            if host in host_handles:
                cols[0] = "root@" + host_handles[host]
                if cols[-1] != "-":
                    cols[-1] = "key:" + host_handles[host]
            rows.append(cols)
        rows.sort()
    expected = {k: sorted(v) for k, v in sets.items()}
    expected["created"] = created
    expected["machines_file"] = rows
    crash = None
    if error is not None:
        etype, message, line = error
        cls = next((c for c, ts, ls, rx in CRASHES if (ts is None or etype in ts) and (ls is None or line in ls)
                    and (rx is None or re.search(rx, message))), "other")
        phase = next((p for first, last, p in PHASES if line is not None and first <= line <= last), "unknown")
        crash = {"class": cls, "phase": phase}
    return {"expected": expected, "crash": crash, "checked": checked}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

#!/usr/bin/env python3
"""Ferry beside rsync, rclone and Syncthing on the same datasets, in one run, loopback only.

Each tool is one class with the same methods (start, prepare, sync, destination, recover,
stop), so another peer is one more class. Every tool gets a fresh destination and the same
sequence of phases:

  for each dataset (mix, small, large): initial sync, then a no-op re-sync;
  on the large file: a 1-byte change in the middle, then a 1-byte insertion at its start.

A phase is timed from the moment the tool is told to sync until the destination holds
the source's content; bytes on the wire are the loopback interface's received bytes in that
time (everything on 127.0.0.1, so nothing else should be running). Pairing a device with the
other side is set-up, not syncing, and is not timed: Syncthing's two instances exchange
device IDs in `start`, and Ferry's device logs in (`prepare`) before its first sync of each
dataset. Adding the folder is timed for both.
"""
import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET

MiB = 1 << 20


def loopback_bytes():
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    raise RuntimeError("no loopback interface in /proc/net/dev")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, what, interval=0.05):
    if PHASE_BUDGET is not None and timeout > PHASE_BUDGET:
        timeout = PHASE_BUDGET
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(interval)
        raise PhaseTimeout()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def wait_for_port(port, timeout=30):
    def open_():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_until(open_, timeout, f"127.0.0.1:{port}")


class PhaseTimeout(Exception):
    pass


# A phase that takes longer than this is stopped and reported as such (full runs only).
PHASE_BUDGET = None


def run(cmd, env=None, stdin=None, quiet=True):
    try:
        result = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=PHASE_BUDGET)
    except subprocess.TimeoutExpired:
        raise PhaseTimeout()
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def tree_digest(root):
    """Relative path → (size, sha256) for every regular file, ignoring tools' own metadata."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".ferry", ".stfolder", ".stversions")]
        for name in filenames:
            if name.startswith(".ferry") or name.startswith(".syncthing") or name == ".stignore":
                continue
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[os.path.relpath(path, root)] = (os.path.getsize(path), h.hexdigest())
    return out


# ---------------------------------------------------------------- datasets

def make_mix(dest, target_bytes):
    """Real files: documentation, man pages and the Swift toolchain's libraries."""
    sources = ["/usr/share/doc", "/usr/share/man"]
    swift = shutil.which("swift")
    if swift:
        sources.append(os.path.realpath(os.path.join(os.path.dirname(os.path.realpath(swift)), "..", "lib")))
    total = 0
    for source in sources:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                size = os.path.getsize(path)
                if size == 0 or total + size > target_bytes:
                    continue
                target = os.path.join(dest, os.path.basename(source), os.path.relpath(path, source))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
                total += size
                if total >= target_bytes * 0.98:
                    return total
    return total


def make_small(dest, count, seed=7):
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        directory = os.path.join(dest, f"d{i % 100:02d}")
        os.makedirs(directory, exist_ok=True)
        size = rng.randint(1024, 8192)
        with open(os.path.join(directory, f"f{i:05d}.bin"), "wb") as f:
            f.write(rng.randbytes(size))
        total += size
    return total


def make_large(path, size, seed=11):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(rng.randbytes(n))
            left -= n
    return size


def change_middle(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    bump_mtime(path)


def insert_at_start(path):
    tmp = path + ".tmp"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        dst.write(b"\x2a")
        shutil.copyfileobj(src, dst, 16 * MiB)
    os.replace(tmp, path)
    bump_mtime(path)


def bump_mtime(path):
    """A second later than before: tools that compare mtimes at second precision see the change."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, max(st.st_mtime_ns + 2_000_000_000, time.time_ns())))


# ---------------------------------------------------------------- tools

class Tool:
    def prepare(self, dataset, source, phase):
        """Untimed set-up before a phase; most tools need none."""


class Ferry(Tool):
    name = "Ferry"
    # Plain HTTP on 127.0.0.1; FerryTLS below is the same over HTTPS.
    tls = False

    def __init__(self, work, binaries):
        self.work = work
        self.bin = binaries
        self.port = free_port()
        self.data = os.path.join(work, "server")
        self.homes = {}

    def start(self):
        config = os.path.join(self.work, "server.json")
        with open(config, "w") as f:
            json.dump({"storage": {"reserveBytes": 0}}, f)
        run([self.bin["ferry-server"], "user", "add", "bench", "--password-stdin", "--data", self.data], stdin="bench-password-123\n")
        self.server = subprocess.Popen([self.bin["ferry-server"], "serve", "--data", self.data, "--config", config, "--port", str(self.port)]
                                       + (["--tls"] if self.tls else []),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "LOG_LEVEL": "error"})
        wait_for_port(self.port)
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        # A device pins the certificate the server made on its first start (SPEC §8).
        self.trust = ["--fingerprint", run([self.bin["ferry-server"], "tls", "fingerprint", "--data", self.data]).strip()] if self.tls else []

    def env(self, dataset):
        home = os.path.join(self.work, "home-" + dataset)
        return {"HOME": home, "XDG_CONFIG_HOME": home + "/config", "XDG_STATE_HOME": home + "/state",
                "XDG_RUNTIME_DIR": home + "/run", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def prepare(self, dataset, source, phase):
        """A device per dataset, logged in once (its pairing with the server)."""
        if phase == "initial":
            run([self.bin["ferry"], "login", self.url, "--user", "bench", "--device-name", "bench-" + dataset, "--password-stdin"] + self.trust,
                env=self.env(dataset), stdin="bench-password-123\n")

    def sync(self, dataset, source, phase):
        env = self.env(dataset)
        if phase == "initial":
            run([self.bin["ferry"], "folder", "add", source, "--library", dataset], env=env)
        run([self.bin["ferry"], "sync"], env=env)

    def destination(self, dataset):
        return None  # the server's library: checked by the sync's own exit status

    def recover(self, dataset):
        pass  # the timed-out client process was killed; the server stays up for the next dataset

    def stop(self):
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(timeout=30)


class FerryTLS(Ferry):
    name = "Ferry (TLS)"
    tls = True


class Rsync(Tool):
    name = "rsync"

    def __init__(self, work, binaries):
        self.work = work
        self.port = free_port()
        self.dest = os.path.join(work, "dest")

    def start(self):
        os.makedirs(self.dest, exist_ok=True)
        conf = os.path.join(self.work, "rsyncd.conf")
        with open(conf, "w") as f:
            # Run as whoever runs the benchmark (a root daemon would switch to "nobody").
            f.write(f"use chroot = no\nuid = {os.getuid()}\ngid = {os.getgid()}\n[bench]\npath = {self.dest}\nread only = no\n")
        self.daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={conf}", f"--port={self.port}", "--address=127.0.0.1"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def sync(self, dataset, source, phase):
        run(["rsync", "-a", "--delete", source + "/", f"rsync://127.0.0.1:{self.port}/bench/{dataset}/"])

    def destination(self, dataset):
        return os.path.join(self.dest, dataset)

    def recover(self, dataset):
        pass  # the timed-out client process was killed; the server stays up for the next dataset

    def stop(self):
        self.daemon.terminate()
        self.daemon.wait(timeout=30)


class Rclone(Tool):
    name = "rclone"

    def __init__(self, work, binaries):
        self.work = work
        self.port = free_port()
        self.dest = os.path.join(work, "dest")

    def start(self):
        os.makedirs(self.dest, exist_ok=True)
        self.server = subprocess.Popen(["rclone", "serve", "webdav", self.dest, "--addr", f"127.0.0.1:{self.port}", "--config", "/dev/null"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def sync(self, dataset, source, phase):
        run(["rclone", "sync", source, f":webdav:{dataset}", "--webdav-url", f"http://127.0.0.1:{self.port}", "--config", "/dev/null",
             # owncloud: rclone's WebDAV server then keeps modification times, so a changed file of the same size is seen.
             "--webdav-vendor", "owncloud", "--transfers", "8", "--checkers", "16"])

    def destination(self, dataset):
        return os.path.join(self.dest, dataset)

    def recover(self, dataset):
        pass  # the timed-out client process was killed; the server stays up for the next dataset

    def stop(self):
        self.server.terminate()
        self.server.wait(timeout=30)


class Syncthing(Tool):
    """Two instances on 127.0.0.1; the source folder is shared from A to B."""
    name = "Syncthing"

    def __init__(self, work, binaries):
        self.work = work
        self.nodes = []

    def start(self):
        for label in ("a", "b"):
            home = os.path.join(self.work, "st-" + label)
            run(["syncthing", "generate", "--home", home, "--no-default-folder", "--skip-port-probing"])
            device = run(["syncthing", "serve", "--home", home, "--device-id"]).strip()
            self.nodes.append({"home": home, "id": device, "gui": free_port(), "sync": free_port()})
        for node, peer in ((self.nodes[0], self.nodes[1]), (self.nodes[1], self.nodes[0])):
            self.configure(node, peer)
        env = {**os.environ, "STNOUPGRADE": "1", "STNODEFAULTFOLDER": "1"}
        for node in self.nodes:
            node["process"] = subprocess.Popen(["syncthing", "serve", "--home", node["home"], "--no-browser", "--no-restart", "--no-upgrade",
                                                "--gui-address", f"127.0.0.1:{node['gui']}"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for node in self.nodes:
            wait_for_port(node["gui"])
            wait_until(lambda: self.api(node, "GET", "/rest/system/ping") is not None, 30, "syncthing's API")
        wait_until(lambda: self.api(self.nodes[0], "GET", "/rest/system/connections")["connections"][self.nodes[1]["id"]]["connected"],
                   60, "the two syncthing instances to connect")

    def configure(self, node, peer):
        """Everything that would leave the machine is off before the first start."""
        path = os.path.join(node["home"], "config.xml")
        tree = ET.parse(path)
        root = tree.getroot()
        node["apikey"] = root.find("gui/apikey").text
        options = root.find("options")
        for key, value in {"listenAddress": f"tcp://127.0.0.1:{node['sync']}", "globalAnnounceEnabled": "false",
                           "localAnnounceEnabled": "false", "relaysEnabled": "false", "natEnabled": "false", "urAccepted": "-1",
                           "autoUpgradeIntervalH": "0", "startBrowser": "false", "crashReportingEnabled": "false",
                           "setLowPriority": "false"}.items():
            element = options.find(key)
            if element is None:
                element = ET.SubElement(options, key)
            element.text = value
        for element in options.findall("globalAnnounceServer"):
            options.remove(element)
        device = ET.SubElement(root, "device", {"id": peer["id"], "name": "peer", "compression": "metadata", "introducer": "false"})
        ET.SubElement(device, "address").text = f"tcp://127.0.0.1:{peer['sync']}"
        tree.write(path)

    def api(self, node, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{node['gui']}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"X-API-Key": node["apikey"], "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                data = response.read()
                return json.loads(data) if data else {}
        except OSError:
            return None

    def status(self, node, folder):
        return self.api(node, "GET", f"/rest/db/status?folder={folder}")

    def sync(self, dataset, source, phase):
        a, b = self.nodes
        if phase == "initial":
            for node, path in ((a, source), (b, os.path.join(self.work, "dest", dataset))):
                os.makedirs(path, exist_ok=True)
                folder = {"id": dataset, "label": dataset, "path": path, "type": "sendreceive", "rescanIntervalS": 3600,
                          "fsWatcherEnabled": False, "devices": [{"deviceID": a["id"]}, {"deviceID": b["id"]}]}
                self.api(node, "POST", "/rest/config/folders", folder)
            wait_until(lambda: (self.status(a, dataset) or {}).get("state") == "idle", 600, "syncthing A's first scan", 0.1)
        else:
            before = self.status(a, dataset)["sequence"]
            self.api(a, "POST", f"/rest/db/scan?folder={dataset}")
            if self.status(a, dataset)["sequence"] == before:
                return  # nothing changed: the scan was the whole re-sync
        want = self.status(a, dataset)
        # B keeps A's modification times: an edited file is there once its mtime and size are.
        edited = [name for name in os.listdir(source) if phase.startswith("1-byte") and os.path.isfile(os.path.join(source, name))]
        target = self.destination(dataset)

        def arrived(name):
            try:
                a_, b_ = os.stat(os.path.join(source, name)), os.stat(os.path.join(target, name))
            except OSError:
                return False
            return a_.st_size == b_.st_size and abs(a_.st_mtime_ns - b_.st_mtime_ns) < 1_000_000

        def done():
            s = self.status(b, dataset) or {}
            return (s.get("state") == "idle" and s.get("needFiles", 1) == 0 and s.get("localFiles") == want["localFiles"]
                    and s.get("localBytes") == want["localBytes"] and all(arrived(name) for name in edited))
        wait_until(done, 1800, f"syncthing B to have {dataset}", 0.1)

    def destination(self, dataset):
        return os.path.join(self.work, "dest", dataset)

    def recover(self, dataset):
        """A folder that ran out of time is paused so its traffic does not count in later phases."""
        for node in self.nodes:
            self.api(node, "PATCH", f"/rest/config/folders/{dataset}", {"paused": True})

    def stop(self):
        for node in self.nodes:
            self.api(node, "POST", "/rest/system/shutdown")
        for node in self.nodes:
            try:
                node["process"].wait(timeout=30)
            except subprocess.TimeoutExpired:
                node["process"].kill()


TOOLS = {"ferry": Ferry, "ferry-tls": FerryTLS, "rsync": Rsync, "rclone": Rclone, "syncthing": Syncthing}


# ---------------------------------------------------------------- the run

def measure(tools, scratch, quick, binaries):
    sizes = {"mix": 8 * MiB if quick else 1024 * MiB, "small": 300 if quick else 20000, "large": 32 * MiB if quick else 1024 * MiB}
    pristine = os.path.join(scratch, "pristine")
    datasets = {}
    print("preparing datasets …", file=sys.stderr)
    os.makedirs(pristine + "/mix")
    datasets["mix"] = make_mix(pristine + "/mix", sizes["mix"])
    os.makedirs(pristine + "/small")
    datasets["small"] = make_small(pristine + "/small", sizes["small"])
    os.makedirs(pristine + "/large")
    datasets["large"] = make_large(pristine + "/large/big.bin", sizes["large"])
    counts = {name: sum(len(files) for _, _, files in os.walk(os.path.join(pristine, name))) for name in datasets}
    expected = {name: tree_digest(os.path.join(pristine, name)) for name in datasets}

    phases = [("mix", "initial"), ("mix", "no-op"), ("small", "initial"), ("small", "no-op"), ("large", "initial"),
              ("large", "no-op"), ("large", "1-byte change in the middle"), ("large", "1-byte insertion at the start")]
    results = {}
    for key in tools:
        tool_class = TOOLS[key]
        work = os.path.join(scratch, key)
        source_root = os.path.join(work, "source")
        shutil.copytree(pristine, source_root, symlinks=True)
        tool = tool_class(work, binaries)
        print(f"{tool.name}: starting", file=sys.stderr)
        tool.start()
        skipped = set()
        try:
            for dataset, phase in phases:
                source = os.path.join(source_root, dataset)
                if dataset in skipped:
                    if phase.startswith("1-byte change"):
                        change_middle(source + "/big.bin")
                    elif phase.startswith("1-byte insertion"):
                        insert_at_start(source + "/big.bin")
                    results.setdefault(f"{dataset}: {phase}", {})[tool.name] = {"skipped": "an earlier phase ran out of time"}
                    continue
                if phase.startswith("1-byte change"):
                    change_middle(source + "/big.bin")
                elif phase.startswith("1-byte insertion"):
                    insert_at_start(source + "/big.bin")
                tool.prepare(dataset, source, phase)
                subprocess.run(["sync"])
                wire = loopback_bytes()
                started = time.monotonic()
                try:
                    tool.sync(dataset, source, phase)
                except PhaseTimeout:
                    results.setdefault(f"{dataset}: {phase}", {})[tool.name] = {"timed_out": PHASE_BUDGET, "wire_bytes": loopback_bytes() - wire}
                    print(f"{tool.name}: {dataset} {phase}: stopped after {PHASE_BUDGET} s", file=sys.stderr)
                    skipped.add(dataset)
                    tool.recover(dataset)
                    continue
                seconds = time.monotonic() - started
                wire = loopback_bytes() - wire
                destination = tool.destination(dataset)
                if destination is not None and tree_digest(destination) != tree_digest(source):
                    raise RuntimeError(f"{tool.name} left {destination} different from {source} after {dataset}/{phase}")
                results.setdefault(f"{dataset}: {phase}", {})[tool.name] = {"seconds": round(seconds, 3), "wire_bytes": wire}
                print(f"{tool.name}: {dataset} {phase}: {seconds:.2f} s, {wire / MiB:.1f} MiB on the wire", file=sys.stderr)
        finally:
            # Each tool's files stay until the whole run ends (main removes the scratch
            # directory): on an ext4 without a journal, as on this project's VMs, creating
            # files right after tens of thousands were deleted is many times slower (the
            # allocator skips recently deleted inodes one by one), which would charge one
            # tool for the previous tool's clean-up.
            tool.stop()
    return {"datasets": {name: {"bytes": datasets[name], "files": counts[name]} for name in datasets}, "rows": results}


def cell(result):
    if result is None:
        return ""
    if "timed_out" in result:
        return f"> {result['timed_out']} s ({result['wire_bytes'] / MiB:.1f}+)"
    if "skipped" in result:
        return "—"
    return f"{result['seconds']:.2f} ({result['wire_bytes'] / MiB:.1f})"


def markdown(report, tools):
    names = [TOOLS[k].name for k in tools]
    header = "| dataset: phase | " + " | ".join(f"{n} s (MiB on wire)" for n in names)
    # Ferry over TLS is compared with Ferry over plain HTTP; the peers with Ferry.
    peers = [n for n in names if n not in ("Ferry", FerryTLS.name)] if "Ferry" in names else []
    ratios = [("Ferry", p) for p in peers] + ([(FerryTLS.name, "Ferry")] if "Ferry" in names and FerryTLS.name in names else [])
    if ratios:
        header += " | " + " | ".join(f"{a}/{b} time" for a, b in ratios)
    columns = 1 + len(names) + len(ratios)
    lines = [header + " |", "|" + "---|" * columns]
    for row, by_tool in report["rows"].items():
        cells = [cell(by_tool.get(n)) for n in names]
        for a, b in ratios:
            mine, other = by_tool.get(a, {}).get("seconds"), by_tool.get(b, {}).get("seconds")
            cells.append(f"{mine / other:.2f}" if mine is not None and other else "")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    sets = ", ".join(f"{k}: {v['files']} files, {v['bytes'] / MiB:.0f} MiB" for k, v in report["datasets"].items())
    return "\n".join(lines) + f"\n\nDatasets: {sets}. A ratio below 1 means the first was faster.\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 MiB of real files, 300 small files, a 32 MiB file")
    parser.add_argument("--tools", default="ferry,rsync,rclone,syncthing", help="comma-separated: " + ", ".join(TOOLS))
    parser.add_argument("--tls", action="store_true", help="also run Ferry over HTTPS (the tool ferry-tls), right after Ferry over plain HTTP")
    parser.add_argument("--data-root", default=None, help="directory for the scratch data (default: the system temporary directory)")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--bin", default=".build/release", help="where ferry and ferry-server are built")
    parser.add_argument("--phase-budget", type=int, default=None,
                        help="stop a phase after this many seconds and report it as such (default: 300 for full runs, none for --quick)")
    args = parser.parse_args()
    global PHASE_BUDGET
    PHASE_BUDGET = args.phase_budget if args.phase_budget is not None else (None if args.quick else 300)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.tls and "ferry-tls" not in tools:
        tools.insert(tools.index("ferry") + 1 if "ferry" in tools else 0, "ferry-tls")
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}")
    binaries = {name: os.path.abspath(os.path.join(args.bin, name)) for name in ("ferry", "ferry-server")}
    root = args.data_root or os.environ.get("TMPDIR", "/tmp")
    os.makedirs(root, exist_ok=True)
    scratch = os.path.join(root, f"ferry-bench-peers-{os.getpid()}")
    os.makedirs(scratch)
    try:
        report = measure(tools, scratch, args.quick, binaries)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["benchmark"] = "peers"
    report["mode"] = "quick" if args.quick else "full"
    report["machine"] = {"cores": os.cpu_count(), "kernel": platform.release()}
    report["versions"] = {}
    for tool, cmd in (("rsync", ["rsync", "--version"]), ("rclone", ["rclone", "version"]), ("syncthing", ["syncthing", "--version"])):
        if tool in tools:
            report["versions"][tool] = run(cmd).splitlines()[0]
    text = markdown(report, tools)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

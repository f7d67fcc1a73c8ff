"""Test hosts in network namespaces the test makes itself: one namespace per
node, each with a veth into a bridge the test process reaches them through,
so that the network between two nodes can be cut (a network partition)
while every client still reaches every node.

A cut is a blackhole route on both sides: packets between the two hosts
vanish without an answer, as on a real broken link, and established
connections hang until a timeout notices. Needs root (CAP_NET_ADMIN) and
iproute2; `Network.unavailable()` says why not."""

import os
import re
import subprocess

PREFIX = "slc"  # every name starts with it, plus this process's id


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Network:
    """Hosts 1..n at 10.213.X.i, the test process at 10.213.X.254."""

    def __init__(self, hosts):
        pid = os.getpid()
        self.tag = f"{PREFIX}{pid}"
        self.subnet = f"10.213.{pid % 250}"
        self.bridge = f"{self.tag}b"
        self.hosts = list(hosts)
        self.cuts = set()

    @staticmethod
    def unavailable():
        """None when namespaces can be made here, else the reason."""
        probe = f"{PREFIX}{os.getpid()}p"
        try:
            made = ip("netns", "add", probe, check=False)
        except FileNotFoundError:
            return "iproute2 (`ip`) is not installed"
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()}"
        ip("netns", "del", probe, check=False)
        return None

    def namespace(self, host):
        return f"{self.tag}n{host}"

    def address(self, host):
        return f"{self.subnet}.{host}"

    def exec_prefix(self, host):
        """The command words that run a program on `host`."""
        return ["ip", "netns", "exec", self.namespace(host)]

    def create(self):
        self.destroy_stale()
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for h in self.hosts:
            ns, veth = self.namespace(h), f"{self.tag}v{h}"
            ip("netns", "add", ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.address(h)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        return self

    def cut(self, a, b):
        """No packet passes between hosts a and b, in either direction."""
        for x, y in ((a, b), (b, a)):
            ip("-n", self.namespace(x), "route", "add", "blackhole", f"{self.address(y)}/32")
        self.cuts.add(frozenset((a, b)))

    def heal(self):
        for a, b in self.cuts:
            for x, y in ((a, b), (b, a)):
                ip("-n", self.namespace(x), "route", "del", "blackhole", f"{self.address(y)}/32", check=False)
        self.cuts.clear()

    def destroy(self):
        for h in self.hosts:
            ip("link", "del", f"{self.tag}v{h}", check=False)  # and its peer in the namespace
            ip("netns", "del", self.namespace(h), check=False)
        ip("link", "del", self.bridge, check=False)

    @staticmethod
    def destroy_stale():
        """Removes what an earlier run, killed before its cleanup, left behind."""
        namespaces = ip("netns", "list", check=False).stdout.split()
        links = re.findall(r"^\d+: ([^:@]+)", ip("-o", "link", "show", check=False).stdout, re.M)
        for name in set(namespaces) | set(links):
            owner = re.fullmatch(PREFIX + r"(\d+)[bnpv]\d*", name)
            if owner and not os.path.exists(f"/proc/{owner.group(1)}"):
                ip("netns" if name in namespaces else "link", "del", name, check=False)

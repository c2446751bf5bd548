"""A psutil snapshot of the live machine: CPU, memory, disks, boot time, network, agent processes.

Only ever produced for the live system (``--root`` elsewhere cannot be measured).
Command lines are included for the agent's processes only, and go through the
redactor like every other artifact (install arguments can carry a connect key).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

AGENT_PROCESS_NAMES = ("jumpcloud-agent", "jumpcloudtray", "jcagent", "jumpcloud-agent-updater")


def _safe(fn, default=None):
    try:
        return fn()
    except Exception:  # psutil raises AccessDenied and OS-specific errors per call
        return default


def system_snapshot() -> dict[str, Any]:
    import psutil

    vm = psutil.virtual_memory()
    swap = _safe(psutil.swap_memory)
    disks = []
    for part in _safe(lambda: psutil.disk_partitions(all=False), []):
        usage = _safe(lambda p=part: psutil.disk_usage(p.mountpoint))
        disks.append({"device": part.device, "mountpoint": part.mountpoint, "fstype": part.fstype,
                      "total": getattr(usage, "total", None), "free": getattr(usage, "free", None),
                      "percent": getattr(usage, "percent", None)})
    nics = {}
    stats = _safe(psutil.net_if_stats, {})
    for name, addrs in _safe(psutil.net_if_addrs, {}).items():
        st = stats.get(name)
        nics[name] = {"up": getattr(st, "isup", None), "mtu": getattr(st, "mtu", None),
                      "addresses": [{"family": str(a.family), "address": a.address,
                                     "netmask": a.netmask} for a in addrs]}
    agent = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "create_time", "username",
                                     "memory_info", "num_threads"]):
        name = (proc.info.get("name") or "").lower().removesuffix(".exe")
        if name not in AGENT_PROCESS_NAMES:
            continue
        mem = proc.info.get("memory_info")
        agent.append({
            "pid": proc.info["pid"], "name": proc.info.get("name"),
            "cmdline": proc.info.get("cmdline"), "username": proc.info.get("username"),
            "started": _iso(proc.info.get("create_time")),
            "rss": getattr(mem, "rss", None), "threads": proc.info.get("num_threads"),
            "cpu_percent": _safe(lambda p=proc: p.cpu_percent(interval=0.2)),
        })
    return {
        "taken": datetime.now(timezone.utc).isoformat(),
        "boot_time": _iso(_safe(psutil.boot_time)),
        "cpu": {"logical": psutil.cpu_count(), "physical": _safe(lambda: psutil.cpu_count(False)),
                "percent": _safe(lambda: psutil.cpu_percent(interval=0.2)),
                "load_avg": _safe(psutil.getloadavg)},
        "memory": {"total": vm.total, "available": vm.available, "percent": vm.percent,
                   "swap_total": getattr(swap, "total", None), "swap_used": getattr(swap, "used", None)},
        "disks": disks,
        "network": nics,
        "agent_processes": agent,
        "process_count": len(psutil.pids()),
    }


def _iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts else None

"""
A reactor stall watch for bench/stalls.py, loaded into every Python process
started with this folder on C{PYTHONPATH} and C{FBTWIST_STALL_LOG} set to a
folder (Python imports C{sitecustomize} at start).

In a process that runs a Twisted reactor, a heartbeat call every 5 ms
stamps the time; a watcher thread looks every 2 ms and, while the
heartbeat is more than C{FBTWIST_STALL_MS} (default 15) ms late, samples
what the reactor thread is doing: its Python stack, and from C{/proc} its
scheduler state, kernel wait channel and system call.  Each stall becomes
one JSON line in C{FBTWIST_STALL_LOG/stalls-PID.jsonl}, with the CPU time
the process used meanwhile (about the stall's length: the process was
busy; about none: it waited, or was not given a core) and the garbage
collections that ran in it.  Garbage collections over 5 ms are written too.

A stall the watcher could not sample (the thread that should run it did
not get the interpreter) shows as a stall with few samples: the reactor
thread held the interpreter lock all along, e.g. inside one C call.
"""

import gc
import json
import os
import sys
import threading
import time
import traceback

_folder = os.environ.get("FBTWIST_STALL_LOG")
_threshold = float(os.environ.get("FBTWIST_STALL_MS", "15")) / 1000
_interval = 0.005


def _proc(tid, name):
    try:
        with open(f"/proc/self/task/{tid}/{name}") as f:
            return f.read().strip()
    except OSError:
        return ""


def _state(tid):
    stat = _proc(tid, "stat")
    # The command may hold spaces: the state follows the closing parenthesis.
    return stat.rsplit(")", 1)[-1].split()[0] if stat else "?"


class _Watch:
    def __init__(self, folder):
        self.folder = folder
        self.out = None
        self.last = time.monotonic()
        self.lock = threading.Lock()
        self.mainIdent = threading.main_thread().ident
        self.mainNative = os.getpid()  # the main thread's kernel id is the pid
        self.collections = []
        self.gcStarted = None
        self.census = 0
        self.started = time.monotonic()

    def write(self, record):
        with self.lock:
            if self.out is None:
                self.out = open(os.path.join(self.folder, f"stalls-{os.getpid()}.jsonl"), "a", buffering=1)
            record.update(pid=os.getpid(), argv=" ".join(sys.argv[:3])[:120])
            self.out.write(json.dumps(record) + "\n")

    def onGC(self, phase, info):
        now = time.monotonic()
        if phase == "start":
            self.gcStarted = now
        elif self.gcStarted is not None:
            took = now - self.gcStarted
            self.gcStarted = None
            self.collections.append((now, info["generation"], took, info.get("collected", 0)))
            if took > 0.005:
                self.write(dict(kind="gc", at=time.time(), generation=info["generation"], ms=took * 1000,
                                collected=info.get("collected", 0)))
            if info["generation"] == 2 and self.census < 3 and now - self.started > 20:
                # What the full collections walk (the frozen objects aside).
                import collections

                self.census += 1
                objects = gc.get_objects()
                kinds = collections.Counter(type(o).__name__ for o in objects)
                self.write(dict(kind="census", at=time.time(), ms=took * 1000, objects=len(objects),
                                frozen=gc.get_freeze_count(), top=kinds.most_common(15)))
                del objects

    def beat(self, reactor):
        self.last = time.monotonic()
        reactor.callLater(_interval, self.beat, reactor)

    def waitForReactor(self):
        while True:
            time.sleep(0.05)
            module = sys.modules.get("twisted.internet.reactor")
            if module is not None and getattr(module, "running", False):
                module.callFromThread(self.beat, module)
                time.sleep(0.05)
                self.watch()
                return

    def watch(self):
        stall = None
        tick = time.monotonic()
        while True:
            time.sleep(0.002)
            now = time.monotonic()
            late = now - self.last - _interval
            if stall is None and late > _threshold:
                stall = dict(began=self.last + _interval, samples={}, states={}, watcherGap=now - tick,
                             cpu=sum(os.times()[:2]))
            if stall is not None:
                if late > _threshold:
                    frame = sys._current_frames().get(self.mainIdent)
                    stack = "".join(traceback.format_stack(frame, limit=14)) if frame is not None else "?"
                    state = _state(self.mainNative)
                    key = f"{state} {_proc(self.mainNative, 'wchan')} " \
                          f"syscall {_proc(self.mainNative, 'syscall').split(' ')[0]}"
                    if state == "D":
                        # Waiting in the kernel: where exactly (the first frames).
                        kernel = [line.split("] ", 1)[-1].split("+")[0]
                                  for line in _proc(self.mainNative, "stack").splitlines()]
                        key += " kernel " + " < ".join(kernel[:7])
                        stall.setdefault("others", {})
                        for tid in os.listdir("/proc/self/task"):
                            if int(tid) != self.mainNative and _state(tid) == "D":
                                frames = [line.split("] ", 1)[-1].split("+")[0]
                                          for line in _proc(tid, "stack").splitlines()]
                                other = " < ".join(frames[:9])
                                stall["others"][other] = stall["others"].get(other, 0) + 1
                    stall["states"][key] = stall["states"].get(key, 0) + 1
                    stall["samples"][stack] = stall["samples"].get(stack, 0) + 1
                else:
                    took = self.last - stall["began"]
                    gcs = [(g, round(t * 1000, 1)) for (end, g, t, _) in self.collections
                           if end >= stall["began"] - 0.001]
                    samples = sorted(stall["samples"].items(), key=lambda kv: -kv[1])[:3]
                    self.write(dict(kind="stall", at=time.time() - (now - stall["began"]), ms=took * 1000,
                                    cpuMs=(sum(os.times()[:2]) - stall["cpu"]) * 1000,
                                    watcherGapMs=stall["watcherGap"] * 1000, gcs=gcs,
                                    states=stall["states"], others=stall.get("others", {}),
                                    samples=[dict(n=n, stack=s) for s, n in samples],
                                    loadavg=open("/proc/loadavg").read().split()[:3]))
                    stall = None
            self.collections = [c for c in self.collections if c[0] > now - 2]
            tick = now


if _folder:
    _watch = _Watch(_folder)
    gc.callbacks.append(_watch.onGC)
    threading.Thread(target=_watch.waitForReactor, name="stallwatch", daemon=True).start()

"""The client-runner protocol, Python side (the Node side is bench/support/protocol.ts; see it for the protocol).

A runner module gives `make_driver(args)` returning an object with async `query()`, `transaction(id)`,
`warm(n)`, `close()` and optionally `pool_info()`; `run(make_driver)` runs the workload asked for.
"""
import argparse
import asyncio
import json
import math
import os
import random
import resource
import sys
import threading
import time
import traceback

LINEAR = 2048
SUB = 128
BUCKETS = LINEAR + (31 - 11) * SUB
SERIES_MS = 250
WARM_PAUSE_S = 0.3  # WARM_PAUSE_MS in protocol.ts
TIMELINE_MS = 10


def emit(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def epoch_ms():
    return time.time() * 1000.0


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", default="w1")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--duration", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--pool-min", dest="pool_min", type=int, default=10)
    p.add_argument("--pool-max", dest="pool_max", type=int, default=10)
    p.add_argument("--mode", default="")
    p.add_argument("--accounts", type=int, default=100000)
    p.add_argument("--max-ms", dest="max_ms", type=int, default=120000)
    args = p.parse_args()
    args.url = os.environ.get("BENCH_URL", "")
    return args


def bucket_of(us):
    if us < LINEAR:
        return 0 if us < 0 else int(us)
    e = min(30, int(math.floor(math.log2(us))))
    sub = min(SUB - 1, int((us / 2 ** e - 1) * SUB))
    return LINEAR + (e - 11) * SUB + sub


def value_of(bucket):
    if bucket < LINEAR:
        return bucket + 0.5
    e = 11 + (bucket - LINEAR) // SUB
    sub = (bucket - LINEAR) % SUB
    return 2 ** e * (1 + (sub + 0.5) / SUB)


class Histogram:
    def __init__(self):
        self.counts = [0] * BUCKETS
        self.total = 0
        self.sum = 0.0
        self.max = 0.0

    def record(self, us):
        self.counts[bucket_of(us)] += 1
        self.total += 1
        self.sum += us
        if us > self.max:
            self.max = us

    def percentile(self, q):
        if self.total == 0:
            return None
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return round(value_of(i), 1)
        return self.max

    def summary(self):
        return {
            "p50": self.percentile(0.5),
            "p99": self.percentile(0.99),
            "max": round(self.max),
            "mean": None if self.total == 0 else round(self.sum / self.total, 1),
        }


def rusage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_maxrss


class Recorder:
    def __init__(self):
        self.phase = 0
        self.ops = 0
        self.errors = 0
        self.hist = Histogram()
        self.series = []
        self.started = 0.0
        self.stopped = 0.0
        self.cpu0 = (0.0, 0.0)
        self.cpu1 = (0.0, 0.0)

    def start(self):
        self.started = time.perf_counter()
        u, s, _ = rusage()
        self.cpu0 = (u, s)
        self.phase = 1

    def stop(self):
        self.phase = 2
        self.stopped = time.perf_counter()
        u, s, _ = rusage()
        self.cpu1 = (u, s)

    def ok(self, t0):
        if self.phase != 1:
            return
        t1 = time.perf_counter()
        self.ops += 1
        self.hist.record((t1 - t0) * 1e6)
        slot = int((t1 - self.started) * 1000 // SERIES_MS)
        while len(self.series) <= slot:
            self.series.append(0)
        self.series[slot] += 1

    def fail(self):
        if self.phase == 1:
            self.errors += 1

    def result(self, **extra):
        elapsed_ms = (self.stopped - self.started) * 1000
        user = round((self.cpu1[0] - self.cpu0[0]) * 1e6)
        system = round((self.cpu1[1] - self.cpu0[1]) * 1e6)
        out = {
            "type": "result",
            "ops": self.ops,
            "errors": self.errors,
            "elapsedMs": round(elapsed_ms),
            "opsPerSec": round(self.ops / elapsed_ms * 1000) if elapsed_ms > 0 else 0,
            "latencyUs": self.hist.summary(),
            "cpuUs": {"user": user, "system": system},
            "cpuPerOpUs": None if self.ops == 0 else round((user + system) / self.ops, 2),
            "maxRssKb": rusage()[2],
            "series": {"intervalMs": SERIES_MS, "counts": self.series[: int(elapsed_ms // SERIES_MS)]},
        }
        out.update(extra)
        return out


class Timeline:
    def __init__(self):
        self.start_epoch = epoch_ms()
        self.t0 = time.perf_counter()
        self.ok_counts = []
        self.err_counts = []
        self.first_error = None
        self.after_error = []

    def _slot(self):
        slot = int((time.perf_counter() - self.t0) * 1000 // TIMELINE_MS)
        while len(self.ok_counts) <= slot:
            self.ok_counts.append(0)
            self.err_counts.append(0)
        return slot

    def success(self):
        self.ok_counts[self._slot()] += 1
        if self.first_error is not None and len(self.after_error) < 20000:
            self.after_error.append(round(epoch_ms(), 2))

    def failure(self):
        self.err_counts[self._slot()] += 1
        if self.first_error is None:
            self.first_error = epoch_ms()

    def result(self, **extra):
        out = {
            "type": "result",
            "startEpochMs": self.start_epoch,
            "bucketMs": TIMELINE_MS,
            "ok": self.ok_counts,
            "err": self.err_counts,
            "firstErrorEpochMs": self.first_error,
            "successesAfterError": self.after_error,
            "maxRssKb": rusage()[2],
        }
        out.update(extra)
        return out


class Commands:
    """Lines from stdin (`go`, `stop`), read on a thread and handed to the event loop."""

    def __init__(self, loop):
        self.loop = loop
        self.events = {}
        self.received = set()
        threading.Thread(target=self._read, daemon=True).start()

    def _event(self, name):
        if name not in self.events:
            self.events[name] = asyncio.Event()
        return self.events[name]

    def _set(self, name):
        self.received.add(name)
        self._event(name).set()

    def _read(self):
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self._set, line.strip())
        for name in ("go", "stop"):
            self.loop.call_soon_threadsafe(self._set, name)

    async def wait(self, name, timeout_ms):
        if name in self.received:
            return True
        try:
            await asyncio.wait_for(self._event(name).wait(), timeout_ms / 1000)
            return True
        except asyncio.TimeoutError:
            return False


async def _main(make_driver):
    args = parse()
    commands = Commands(asyncio.get_running_loop())
    driver = await make_driver(args)
    last_error = [None]
    n = args.concurrency

    if args.workload in ("w1", "w2"):
        rec = Recorder()
        if args.workload == "w1":
            op = driver.query
        else:
            def op():
                return driver.transaction(random.randint(1, args.accounts))

        async def worker():
            while rec.phase < 2:
                t0 = time.perf_counter()
                try:
                    await op()
                    rec.ok(t0)
                except Exception as error:  # noqa: BLE001
                    last_error[0] = repr(error)
                    rec.fail()
                    await asyncio.sleep(0.001)

        # the pool is opened before the workers start, as every client's is (WARM_PAUSE_MS in protocol.ts)
        await driver.warm(args.pool_min)
        await asyncio.sleep(WARM_PAUSE_S)
        loop = asyncio.get_running_loop()
        loop.call_later(args.warmup / 1000, rec.start)
        loop.call_later((args.warmup + args.duration) / 1000, rec.stop)
        await asyncio.gather(*(worker() for _ in range(n)))
        emit(rec.result(lastError=last_error[0]))
    elif args.workload == "w4":
        timeline = Timeline()
        stopping = [False]

        async def worker():
            while not stopping[0]:
                try:
                    await driver.query()
                    timeline.success()
                except Exception as error:  # noqa: BLE001
                    last_error[0] = repr(error)
                    timeline.failure()
                    await asyncio.sleep(0.01)

        tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
        await asyncio.sleep(args.warmup / 1000)
        emit({"type": "ready"})
        await commands.wait("stop", args.max_ms)
        stopping[0] = True
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        emit(timeline.result(lastError=last_error[0]))
    elif args.workload == "w5":
        await driver.warm(args.pool_min)
        emit({"type": "ready"})
        await commands.wait("go", args.max_ms)
        hist = Histogram()
        errors = [0]

        async def request():
            start = time.perf_counter()
            try:
                await driver.query()
                hist.record((time.perf_counter() - start) * 1e6)
            except Exception as error:  # noqa: BLE001
                last_error[0] = repr(error)
                errors[0] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(request() for _ in range(n)))
        duration_ms = (time.perf_counter() - t0) * 1000
        await asyncio.sleep(args.duration / 1000)
        emit({
            "type": "result",
            "burst": {
                "requests": n,
                "durationMs": round(duration_ms, 2),
                "latencyUs": hist.summary(),
                "errors": errors[0],
            },
            "pool": driver.pool_info() if hasattr(driver, "pool_info") else None,
            "maxRssKb": rusage()[2],
            "lastError": last_error[0],
        })
    else:
        raise RuntimeError("workload %s is not run by this client" % args.workload)
    try:
        await asyncio.wait_for(driver.close(), 5)
    except Exception:  # noqa: BLE001
        pass


def run(make_driver):
    def hard_stop():
        emit({"type": "error", "message": "runner exceeded its own time limit"})
        os._exit(3)

    timer = threading.Timer(float(os.environ.get("BENCH_HARD_MS", "600000")) / 1000, hard_stop)
    timer.daemon = True
    timer.start()
    try:
        asyncio.run(_main(make_driver))
    except Exception:  # noqa: BLE001
        emit({"type": "error", "message": traceback.format_exc()})
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)

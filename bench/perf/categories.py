#!/usr/bin/env python3
# Buckets a `perf record -g` profile of meshai-server by where the CPU went (issue #11, docs/benchmarks.md
# "Heartbeat cost on the wire"). Usage: perf script -i perf.data | python3 bench/perf/categories.py
# Start the server with DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 so JIT-compiled frames have names.
# Each sample goes to the first category its thread name, then its stack from the leaf up, matches. Opt-in tooling: CI never runs it.
import sys, re, collections
# perf script output -> share of samples by category (leaf-most matching frame decides)
rules = [
 ("thread-pool spin (sched_yield)", r"sched_yield|LowLevelSpinWaiter|SpinWait"),
 ("thread-pool park/wake (futex, semaphore)", r"futex|LowLevelLifoSemaphore|LowLevelMonitor|WaitHandle|pthread_cond"),
 ("TLS (SslStream, OpenSSL)", r"libssl|libcrypto|SslStream|Interop\+Ssl|Interop\+Crypto|OpenSsl"),
 ("epoll wait", r"epoll_wait|ep_poll|WaitForSocketEvents"),
 ("kernel TCP send", r"__send\b|sendto|tcp_sendmsg|__sys_sendto"),
 ("kernel TCP recv", r"__libc_recv|recvfrom|tcp_recvmsg|__sys_recvfrom"),
 ("protobuf", r"Google\.Protobuf"),
 ("SQLite", r"sqlite|Sqlite"),
 ("our relay/control code", r"\[MeshAI\."),
 ("gRPC server", r"\[Grpc\."),
 ("Kestrel 1 s connection tick", r"TickHeartbeat|Heartbeat::OnHeartbeat|ConnectionManager::Walk|UpdateCompletedStreams|IRequestProcessor\.Tick|CheckForReadDataRateTimeout|TimeoutControl"),
 ("Kestrel HTTP/2 frames", r"Http2|Hpack|Kestrel\.Core"),
 ("Kestrel socket transport", r"Kestrel\.Transport\.Sockets|System\.Net\.Sockets"),
 ("pipelines", r"System\.IO\.Pipelines"),
 ("timers", r"TimerQueue|Threading\.Timer"),
 ("async machinery / thread-pool dispatch", r"ThreadPoolWorkQueue|ExecutionContext|AsyncTaskMethodBuilder|AsyncStateMachineBox|Task::|ValueTask|Dispatch"),
]
rules = [(n, re.compile(p)) for n, p in rules]
bythread = {"Tiered Com": "JIT (tiered compilation)", "Server GC": "GC (server GC threads)", "Kestrel Timer": "Kestrel 1 s connection tick", ".NET Timer": "timers"}
cnt = collections.Counter(); total = 0
sample = []
def flush():
    global total
    if not sample: return
    head = sample[0]; frames = sample[1:]
    total += 1
    for k, v in bythread.items():
        if k in head:
            cnt[v] += 1; return
    for f in frames:
        for n, r in rules:
            if r.search(f):
                cnt[n] += 1; return
    cnt["other (runtime native, unresolved)"] += 1
for line in sys.stdin:
    if line.strip() == "":
        flush(); sample = []
    else:
        sample.append(line.rstrip())
flush()
for n, c in cnt.most_common():
    print(f"{100.0*c/total:6.1f}%  {n}")
print(f"{total} samples")

#!/usr/bin/env python3
"""Buckets a Linux perf profile of a .NET process by where its CPU goes (docs/benchmarks.md, "Server CPU with Linux perf").

Profiling aid only: nothing in CI runs it. Start the process with DOTNET_PerfMapEnabled=1, then:
  perf record -F 499 -g -p PID -o perf.data -- sleep 25
  perf script -i perf.data -F comm,tid,ip,sym,dso > script.txt
  perf script -i perf.data --show-mmap-events | grep 'MMAP.*doublemapper' > mmaps.txt
  python3 bench/perf/buckets.py script.txt /tmp/perf-PID.map mmaps.txt
With W^X on (the .NET default) JIT code runs from a memfd:doublemapper mapping that perf does not match against the perf
map: the mmap events turn each sample's mapping offset back into the address the map lists. Each sample's whole stack
decides its bucket (first rule that matches wins).
"""
import sys, re, collections, bisect
script, mapf, mmf = sys.argv[1:4]
rows=[]
for l in open(mapf, errors='replace'):
    p=l.rstrip('\n').split(' ',2)
    if len(p)==3:
        try: rows.append((int(p[0],16), int(p[1],16), p[2]))
        except: pass
rows.sort(); starts=[r[0] for r in rows]; ends=[r[0]+r[1] for r in rows]; names=[r[2] for r in rows]
mm=[]
for l in open(mmf):
    m=re.search(r'\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+|0) ', l)
    if m: mm.append((int(m.group(3),16), int(m.group(2),16), int(m.group(1),16)))
def resolve(ip, sym, dso):
    if 'doublemapper' in dso:
        for pgoff,size,start in reversed(mm):
            if pgoff <= ip < pgoff+size: ip = start + (ip-pgoff); break
    if sym=='[unknown]' or 'doublemapper' in dso:
        i=bisect.bisect_right(starts, ip)-1
        if i>=0 and ip<ends[i]: return names[i], 'jit'
    return sym, dso
PARSE=re.compile(r'Parser|yy_|keywordCode|GetToken|sqlite3Resolve|resolveExpr|sqlite3Select|sqlite3Insert|sqlite3Update|sqlite3Delete|sqlite3Where|sqlite3Expr|sqlite3Prepare|LockAndPrepare|sqlite3Locate|sqlite3FindTable|sqlite3VdbeMakeReady|sqlite3VdbeAdd|sqlite3CodeVerify|sqlite3StrICmp|findElementWithHash|sqlite3VListNameToNum|sqlite3ColumnIndex|sqlite3FinishCoding|sqlite3DbMallocRaw|sqlite3VdbeDelete|sqlite3VdbeClear|sqlite3_finalize|sqlite3Malloc|sqlite3DbFree|sqlite3ExprDelete|sqlite3SelectDelete')
def classify(comm, frames):
    syms=[f[0] for f in frames]; dsos=[f[1] for f in frames]; leaf=syms[0] if syms else ''; ldso=dsos[0] if dsos else ''
    s='\n'.join(syms)
    if 'sched_yield' in s:
        who = 'LowLevelLifoSemaphore' if 'LowLevelLifoSemaphore' in s else ('SpinWait' if 'SpinWait' in s else ('Monitor' if 'Monitor' in s else 'native/other'))
        return 'yield spin (sched_yield) via '+who
    if 'LowLevelLifoSemaphore' in s: return 'thread-pool idle wait (LowLevelLifoSemaphore, non-yield)'
    if 'GC' in comm or 'Finalizer' in comm: return 'GC/finalizer threads ('+comm+')'
    if 'libe_sqlite3' in ldso:
        return 'SQLite native: prepare/compile/free' if PARSE.search(leaf) else 'SQLite native: execute (btree, pager, WAL)'
    if 'Sqlite' in s or 'sqlite' in s:
        if 'kernel' in ldso: return 'SQLite: kernel I/O (read/write/fcntl on db + WAL)'
        if 'libc' in ldso: return 'SQLite: libc (malloc, mutex)'
        return 'SQLite: managed (Microsoft.Data.Sqlite, Dapper)'
    if 'libsodium' in ldso or 'SigningKeyPair' in s or 'NSec' in s: return 'ed25519 (libsodium/NSec)'
    if 'libssl' in ldso or 'libcrypto' in ldso or 'SslStream' in s: return 'TLS (OpenSSL, SslStream)'
    if 'libclrjit' in ldso: return 'JIT'
    if 'MeshAI' in s or 'Grpc' in s or 'Google.Protobuf' in s:
        if 'kernel' in ldso: return 'kernel (from app code: sockets, futex wake)'
        if 'libcoreclr' in ldso: return 'runtime (coreclr: alloc, GC on allocating thread, casts, stubs) from app code'
        return 'app + gRPC managed (MeshAI, Grpc, Protobuf)'
    if 'Kestrel' in s or 'Http2' in s or 'System.IO.Pipelines' in s: return 'Kestrel HTTP/2 transport (no app frame)'
    if 'epoll' in s or 'Socket' in s: return 'sockets/epoll'
    if 'kernel' in ldso: return 'kernel other (scheduler, timers)'
    return 'other: '+ldso.split('/')[-1]+' '+comm
cats=collections.Counter(); comms=collections.Counter(); total=0; sub=collections.Counter(); incl=collections.Counter()
frames=[]; comm=''
def flush():
    global total
    if not frames: return
    total+=1; c=classify(comm, frames); cats[c]+=1; comms[comm]+=1
    if c.startswith('app'):
        sub[frames[0][0][:120]]+=1
    seen=set()
    for f in frames:
        if f[1]=='jit' and f[0] not in seen: incl[f[0][:140]]+=1; seen.add(f[0])
for line in open(script, errors='replace'):
    line=line.rstrip('\n')
    if not line.strip(): flush(); frames=[]; continue
    if line.startswith((' ','\t')):
        m=re.match(r'\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$', line)
        if m: frames.append(resolve(int(m.group(1),16), m.group(2), m.group(3)))
    else:
        comm=re.sub(r'\s+\d+.*$','',line.strip())
flush()
for k,v in cats.most_common(): print(f'{100*v/total:6.1f}%  {k}')
print('--- threads'); [print(f'{100*v/total:6.1f}%  {k}') for k,v in comms.most_common(12)]
print('--- app leaf'); [print(f'{100*v/total:6.1f}%  {k}') for k,v in sub.most_common(25)]
print('--- managed inclusive'); [print(f'{100*v/total:6.1f}%  {k}') for k,v in incl.most_common(120)]
print('samples', total)

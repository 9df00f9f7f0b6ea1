#!/usr/bin/env python3
# Shares of a perf profile by category (kernel UDP path, epoll/scheduler, syscall entry,
# io_uring, timers, our code, tokio, libc): bench/perf_shares.py perf.data [TOP_N_SYMBOLS]
# (the categories are regexes over symbol names: a rough sort, good for before/after).
import sys,re,subprocess
data=sys.argv[1]
out=subprocess.run(['perf','report','-i',data,'--no-children','--sort','dso,sym','--stdio'],capture_output=True,text=True).stdout
cats={}
total=0
rows=[]
for line in out.splitlines():
    m=re.match(r'\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)',line)
    if not m: continue
    pct=float(m.group(1)); dso=m.group(2); sym=m.group(4).strip()
    total+=pct
    k=m.group(3)
    if k=='k':
        if re.search(r'io_uring|io_issue|io_submit|io_send|__io_',sym): c='kernel: io_uring'
        elif re.search(r'udp|ip_|inet|sock|skb|net_|loopback|__dev|dev_|sendmsg|sendto|tpacket|packet_|csum|xfrm|nf_|fib|dst_|neigh|__netif|netif|raw_local|process_backlog|__kfree_skb|kfree|kmem|kmalloc|alloc_skb|__alloc|copy_from|_copy|fdget|fput|__sys_|memcg|slab|__check_object|rcu',sym): c='kernel: UDP send/receive path'
        elif re.search(r'hrtimer|timer|tick|clock',sym): c='kernel: timers'
        elif re.search(r'epoll|ep_|poll|futex|wake|sched|task_switch|schedule|switch|enqueue|dequeue|pick_next|update_curr|try_to_wake|irqrestore|_raw_spin',sym): c='kernel: epoll, futex, scheduler, locks'
        elif re.search(r'syscall|entry_|exit_to_user|do_syscall|its_return|return_thunk|__x64_sys',sym): c='kernel: syscall entry/exit'
        else: c='kernel: other'
    elif dso.startswith('libc'):
        if re.search(r'mem(move|set|cpy|cmp)',sym): c='libc: memcpy/memset'
        elif re.search(r'send|recv|epoll|syscall',sym): c='libc: syscall wrappers'
        else: c='libc: other (malloc, locks)'
    elif 'vdso' in dso: c='timers: clock_gettime (vdso)'
    else:
        if re.search(r'tokio::runtime::time|tokio::time|TimerEntry|timer',sym): c='timers: tokio timer'
        elif re.search(r'tokio|mio|parking|crossbeam',sym): c='tokio runtime / io driver'
        elif re.search(r'sspr_ivr::media::goertzel',sym): c='ours: goertzel'
        elif re.search(r'sspr_ivr::runtime',sym): c='ours: runtime (shard, call task, egress)'
        elif re.search(r'sspr_ivr',sym): c='ours: sans-IO call/media/flow'
        elif re.search(r'io_uring',sym): c='ours: runtime (shard, call task, egress)'
        elif re.search(r'tracing',sym): c='tracing'
        elif re.search(r'alloc|Vec|BinaryHeap|hash|core::',sym): c='std (collections, alloc)'
        else: c='other user: '+sym[:40]
    cats[c]=cats.get(c,0)+pct
    rows.append((pct,dso,sym,c))
for c,v in sorted(cats.items(),key=lambda x:-x[1]):
    print(f"{v:6.1f}%  {c}")
if len(sys.argv)>2:
    for r in sorted(rows,reverse=True)[:int(sys.argv[2])]: print(f"{r[0]:6.2f}% {r[1][:12]:12} {r[2][:60]:60} {r[3]}")

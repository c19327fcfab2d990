#!/usr/bin/env python3
"""bench/offcpu.py: where a proxy's threads were off their CPU, from a
system-wide scheduler trace (bench/run.sh PERF_SCHED=1 KEEP_TMP=1 records
TMP/perf/TARGET.rN.data).

    perf script -i TMP/perf/govs.r3.data | bench/offcpu.py govs

COMM is the prefix of the threads' command name (govs, haproxy). Prints the
threads' CPU time, their preemptions (switched out while runnable) and
their wakeup-to-run delays by length, and which commands ran on the CPU a
thread left during its preemptions of 1 ms or more (the other loop of the
same process, when two loops share a CPU).
"""
import collections
import re
import sys

SWITCH = re.compile(r'\[(\d+)\]\s+([\d.]+): sched:sched_switch: prev_comm=(.*?) prev_pid=(\d+) '
                    r'prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)')
WAKEUP = re.compile(r'\[(\d+)\]\s+([\d.]+): sched:sched_wakeup: comm=(.*?) pid=(\d+)')
BINS = [0.05, 0.2, 0.5, 1, 2, 5, float('inf')]


def bin_of(ms):
    return next(b for b in BINS if ms < b)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    target = sys.argv[1]
    off = {}        # tid -> (time, state, cpu) when switched out
    woken = {}      # tid -> time of its wakeup
    oncpu = {}      # cpu -> (pid, comm, since)
    during = {}     # tid -> Counter(comm -> s) run on the CPU it left while it waited
    runtime = collections.Counter()
    pre, pre_ms = collections.Counter(), collections.Counter()
    wake, wake_ms = collections.Counter(), collections.Counter()
    who = collections.Counter()
    first = last = None
    for line in sys.stdin:
        m = SWITCH.search(line)
        if m:
            cpu, t, prev_comm, prev, state, next_comm, nxt = m.groups()
            t, prev, nxt = float(t), int(prev), int(nxt)
            first = first if first is not None else t
            last = t
            cur = oncpu.get(cpu)
            if cur:
                if cur[1].startswith(target):
                    runtime[cur[0]] += t - cur[2]
                for tid, (t0, s0, c0) in off.items():
                    if s0.startswith('R') and c0 == cpu:
                        during[tid][cur[1]] += t - max(cur[2], t0)
            if prev_comm.startswith(target):
                off[prev] = (t, state, cpu)
                during[prev] = collections.Counter()
            if next_comm.startswith(target) and nxt in off:
                t0, s0, _ = off.pop(nxt)
                ms = (t - t0) * 1000
                if s0.startswith('R'):
                    pre[bin_of(ms)] += 1
                    pre_ms[bin_of(ms)] += ms
                    if ms >= 1:
                        for comm, s in during[nxt].items():
                            who[comm] += s * 1000
                elif nxt in woken:
                    ms = (t - woken.pop(nxt)) * 1000
                    wake[bin_of(ms)] += 1
                    wake_ms[bin_of(ms)] += ms
            oncpu[cpu] = (nxt, next_comm, t)
            continue
        m = WAKEUP.search(line)
        if m and m.group(3).startswith(target):
            woken[int(m.group(4))] = float(m.group(2))
    span = (last - first) if first is not None else 0

    def row(counts, total):
        return ' '.join(f'<{b:g}:{counts[b]}({total[b]:.0f}ms)' for b in BINS)
    busiest = sorted(runtime.values(), reverse=True)[:4]
    print(f'span {span:.2f} s; CPU s of its busiest threads: ' + ' '.join(f'{v:.2f}' for v in busiest))
    print('preempted (off while runnable), count(total) by length in ms: ' + row(pre, pre_ms))
    print('woken until running, count(total) by length in ms:            ' + row(wake, wake_ms))
    print('ran on its CPU during preemptions of 1 ms or more (ms): ' +
          ', '.join(f'{c}={ms:.0f}' for c, ms in who.most_common(8)))


if __name__ == '__main__':
    main()

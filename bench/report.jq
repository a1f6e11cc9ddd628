# bench/report.jq: the runs (one loadgen JSON object each, slurped) into
# bench/results/latest.json: per label the median run by its main figure,
# and the issue's targets against the figures of this same run.

# the figure a label's median run is chosen by: paced runs all reach the
# rate, so their latency decides
def primary:
  if .scenario == "idle" then .pss_per_conn_b
  elif .scenario == "storm" then .sessions_per_s
  elif (.label | test("paced|closed")) then .p99_ms
  else .deliveries_per_s end;

def round2: if . == null then null else (. * 100 | round) / 100 end;

# receipts per second over the second half of a run against the first
# (the last second may be partial: left out): 1.0 is flat
def halves:
  (.rx_per_s // []) as $x
  | ($x | length) as $n
  | if $n < 3 then null
    else ($x[0:(($n - 1) / 2 | floor)]) as $a
      | ($x[(($n - 1) / 2 | floor):($n - 1)]) as $b
      | if ($a | add) == 0 then null
        else (($b | add) / ($b | length)) / (($a | add) / ($a | length))
             | round2 end
    end;

def median_run:
  (sort_by(primary)) as $s
  | $s[(($s | length) / 2 | floor)]
    + {runs: ($s | length), all_runs: map(primary),
       p99_runs: map(.p99_ms // null), halves_runs: map(halves)};

def ratio(a; b):
  if a == null or b == null or b == 0 then null else (a / b | round2) end;

# the unrounded quotient, for the checks: a ratio shown as 0.5x may be
# 0.498 (the cluster's 15,012 / 30,165 was), which is not at least 0.5
def q(a; b): if a == null or b == null or b == 0 then null else a / b end;

# shown where a goal is near: three places, cut, so 0.4975 reads 0.497
def ratio3(a; b): q(a; b) | if . == null then null
                             else (. * 1000 | floor) / 1000 end;

def met(cond): if cond == null then null else cond end;

(map(select(.target == "pushd" and (.server_died // 0) > 0))) as $crashed
| (map(select(.target == "pushd")) | length) as $pushd_runs
| (group_by(.label) | map(median_run) | map({key: .label, value: .})
 | from_entries) as $r
| ($sizes.idle[0] // 10000) as $idle
| def fig($l; f): ($r[$l] // null) | if . == null then null
                                               else f end;
  {
    date: $date,
    host: {cores: $cores, mem_gb: $mem, kernel: $versions.kernel},
    versions: $versions,
    sizes: $sizes,
    results: $r,
    problems: $problems,
    runs: .,
    tails: [$r | to_entries[] | .value | select(.p999_ms != null)
            | {label: .label, p999_ms: .p999_ms, max_ms: .max_ms,
               saturated: ((.rate // 0) == 0 and .scenario != "storm"
                           and (.label | test("closed") | not)),
               offline: (.scenario == "storm"),
               over_50ms: (.p999_ms > 50 or (.max_ms // 0) > 50)}],
    crashes: {pushd_runs: $pushd_runs, crashed_runs: ($crashed | length),
              labels: ($crashed | map(.label) | unique)},
    targets: [
      {target: "pushd never crashes (every run, every process)",
       goal: "0 runs with a dead server process",
       measured: (if ($crashed | length) == 0 then "none in \($pushd_runs) runs"
                  else "a worker died (SIGSEGV) in \($crashed | length) of \($pushd_runs) pushd runs: \($crashed | map(.label) | unique | join(", "))" end),
       met: (($crashed | length) == 0)},
      (($sizes.idle | max // $idle) as $idle
       | fig("idle-pushd-\($idle)"; .counted_per_conn_b) as $p
       | {target: "memory per idle plain connection: the marginal PSS outside shared memory plus the register bytes it occupies (entry, chain head, a per-address count)",
          goal: "at most 512 B",
          measured: "pushd \($p) B at \($idle) connections = \(fig("idle-pushd-\($idle)"; .private_marginal_per_conn_b)) B marginal + \(fig("idle-pushd-\($idle)"; .zone_per_conn_b)) B in the register zone (mean PSS growth \(fig("idle-pushd-\($idle)"; .pss_per_conn_b)) B; nchan marginal \(fig("idle-nchan-\($idle)"; .marginal_per_conn_b)) B, bare \(fig("idle-bare-\($idle)"; .marginal_per_conn_b)) B)",
          met: met(if $p == null or $idle < 10000 then null else $p <= 512 end)}),
      (($sizes.idle | max // $idle) as $big
       | fig("idle-pushd-\($big)"; .whole_pss_per_conn_b) as $p
       | {target: "the whole server's PSS over N idle connections, zones sized for N, at the largest N of the run",
          goal: "under 1 KB (1024 B)",
          measured: "pushd \($p) B at \($big) connections (\(fig("idle-pushd-\($big)"; .pss_after_kb)) kB in all, \(fig("idle-pushd-\($big)"; .pss_before_kb)) kB before the first; \([$sizes.idle[] as $n | fig("idle-pushd-\($n)"; "\(.whole_pss_per_conn_b) B at \($n)")] | join(", ")); nchan \(fig("idle-nchan-\($big)"; .whole_pss_per_conn_b)) B, bare \(fig("idle-bare-\($big)"; .whole_pss_per_conn_b)) B)",
          met: met(if $p == null then null else $p < 1024 end)}),
      (fig("idle-tls-pushd-\($idle)"; .counted_per_conn_b // .pss_per_conn_b) as $p
       | ($sizes.tls_floor // null) as $floor
       | (if $floor != null and $floor > 8192 then $floor + 1024 else 8192 end) as $limit
       | {target: "memory per idle TLS connection, counted as the plain one",
          goal: "at most 8 KB, or at most 1 KB above OpenSSL's own floor (tls_mem) when that is above 8 KB: \($limit) B here",
          measured: (if $p == null then "not measured (no idle TLS run)"
                     else "pushd \($p) B at \($idle) connections (mean PSS growth \(fig("idle-tls-pushd-\($idle)"; .pss_per_conn_b)) B; OpenSSL alone \($floor) B; nchan \(fig("idle-tls-nchan-\($idle)"; .marginal_per_conn_b)) B marginal)" end),
          met: met(if $p == null or $idle < 10000 then null else $p <= $limit end)}),
      (ratio(fig("fanout-pushd"; .deliveries_per_s);
             fig("fanout-bare"; .deliveries_per_s)) as $x
       | {target: "fan-out deliveries/s against the bare epoll server, same workers",
          goal: "at least 1.0x",
          measured: "\($x)x (pushd \(fig("fanout-pushd"; .deliveries_per_s)), bare \(fig("fanout-bare"; .deliveries_per_s)), nchan \(fig("fanout-nchan"; .deliveries_per_s)) = \(ratio(fig("fanout-nchan"; .deliveries_per_s); fig("fanout-bare"; .deliveries_per_s)))x)",
          met: met(if $x == null then null
                   else q(fig("fanout-pushd"; .deliveries_per_s);
                          fig("fanout-bare"; .deliveries_per_s)) >= 1.0 end)}),
      (ratio(fig("fanout-pushd"; .deliveries_per_s);
             fig("fanout-bare4"; .deliveries_per_s)) as $x
       | {target: "fan-out deliveries/s against the bare server coalescing up to 4 frames per writev() as pushd does",
          goal: "at least 1.0x",
          measured: "\($x)x (pushd \(fig("fanout-pushd"; .deliveries_per_s)), bare writev x4 \(fig("fanout-bare4"; .deliveries_per_s)), bare \(fig("fanout-bare"; .deliveries_per_s)))",
          met: met(if $x == null then null
                   else q(fig("fanout-pushd"; .deliveries_per_s);
                          fig("fanout-bare4"; .deliveries_per_s)) >= 1.0 end)}),
      (([.[] | select(.scenario == "fanout")
        | select((.subs // 0) != (.subs_whole // 0) or (.lost // 0) > 0
                 or (.dups // 0) > 0) | .label]) as $bad
       | ([.[] | select(.scenario == "fanout" and .subs != null)] | length) as $n
       | {target: "fan-out: every subscriber receives every message once, in order",
          goal: "every subscriber of every fan-out run",
          measured: (if $n == 0 then "no fan-out run that counted its subscribers"
                     elif ($bad | length) == 0 then "all subscribers whole in all \($n) runs"
                     else "not all whole in \($bad | unique | join(", "))" end),
          met: met(if $n == 0 then null else ($bad | length) == 0 end)}),
      (([.[] | select(.scenario == "unicast" or .scenario == "storm")
        | select((.wrong_uid // 0) > 0) | .label]) as $bad
       | ([.[] | select((.scenario == "unicast" or .scenario == "storm")
                        and .wrong_uid != null)] | length) as $n
       | {target: "unicast: each message received by the uids it was pushed to",
          goal: "0 to another uid",
          measured: (if $n == 0 then "no unicast run that checked the uid"
                     elif ($bad | length) == 0 then "none to another uid in all \($n) runs"
                     else "messages to another uid in \($bad | unique | join(", "))" end),
          met: met(if $n == 0 then null else ($bad | length) == 0 end)}),
      (fig("fanout-pushd"; .user_us_per_delivery) as $u
       | ratio($u; fig("fanout-bare"; .user_us_per_delivery)) as $x
       | {target: "fan-out server user CPU per delivery against the bare server's, same run",
          goal: "at most 1.2x",
          measured: "\($x)x: pushd \($u) us (bare \(fig("fanout-bare"; .user_us_per_delivery)) us, bare writev x4 \(fig("fanout-bare4"; .user_us_per_delivery)) us, nchan \(fig("fanout-nchan"; .user_us_per_delivery)) us)",
          met: met(if $x == null then null
                   else q($u; fig("fanout-bare"; .user_us_per_delivery)) <= 1.2
                   end)}),
      (ratio(fig("unicast-pushd"; .deliveries_per_s);
             fig("unicast-nchan"; .deliveries_per_s)) as $x
       | fig("unicast-pushd"; .lost) as $l
       | {target: "unicast qos 1 with an ack per message, one uid per request, against nchan's publishes/s",
          goal: "at least 3x, 0 lost",
          measured: "\($x)x (pushd \(fig("unicast-pushd"; .deliveries_per_s))/s, nchan \(fig("unicast-nchan"; .deliveries_per_s))/s), pushd lost \($l)",
          met: met(if $x == null or $l == null then null
                   else q(fig("unicast-pushd"; .deliveries_per_s);
                          fig("unicast-nchan"; .deliveries_per_s)) >= 3
                        and $l == 0 end)}),
      (fig("unicast-paced-pushd"; .p99_ms) as $p
       | {target: "unicast p99 paced at \($sizes.paced_rate)/s",
          goal: "at most 2 ms",
          measured: "pushd p99 \($p) ms at \(fig("unicast-paced-pushd"; .deliveries_per_s))/s, lost \(fig("unicast-paced-pushd"; .lost)) (nchan p99 \(fig("unicast-paced-nchan"; .p99_ms)) ms; the host's floor, the same three processes and two hops with nothing in them, p99 \(fig("unicast-paced-floor"; .p99_ms)) ms)",
          met: met(if $p == null then null else $p <= 2 end)}),
      (fig("unicast-closed-pushd"; .p99_ms) as $p
       | fig("unicast-closed-nchan"; .p99_ms) as $n
       | {target: "unicast closed-loop tail: 2 publishers, one request at a time each, qos 1 + ack",
          goal: "p99 at most nchan's",
          measured: (if $p == null then "not measured"
                     else "pushd p99 \($p) ms at \(fig("unicast-closed-pushd"; .deliveries_per_s))/s, nchan p99 \($n) ms at \(fig("unicast-closed-nchan"; .deliveries_per_s))/s; lost \(fig("unicast-closed-pushd"; .lost))" end),
          met: met(if $p == null or $n == null then null
                   else $p <= $n and fig("unicast-closed-pushd"; .lost) == 0
                   end)}),
      (fig("unicast100-pushd"; .deliveries_per_s) as $d
       | {target: "unicast with 100 uids per request",
          goal: "at least 100k deliveries/s, 0 lost",
          measured: "\($d) deliveries/s, lost \(fig("unicast100-pushd"; .lost))",
          met: met(if $d == null then null
                   else $d >= 100000 and fig("unicast100-pushd"; .lost) == 0
                   end)}),
      ([$r | to_entries[] | select(.key | test("^idle-pushd-"))
        | .value | select(.connected == .conns and (.tls | not)) | .conns]
       | max) as $big
       | {target: "connections held on one host",
          goal: "1,000,000 (at least 50 workers)",
          measured: (if ([$r | keys[] | select(test("^idle-pushd-"))] | length) == 0
                     then "no idle run"
                     elif $big == null then "no idle run held all its connections"
                     else "largest idle run held: \($big) (run with --big 1000000 for the goal)" end),
          met: met(if ([$r | keys[] | select(test("^idle-pushd-"))] | length) == 0
                   then null elif $big == null then false
                   else $big >= 1000000 end)},
      (fig("cluster-single-pushd"; .deliveries_per_s) as $one
       | ratio3(fig("cluster-via-b-pushd"; .deliveries_per_s); $one) as $b
       | ratio3(fig("cluster-via-a-pushd"; .deliveries_per_s); $one) as $a
       | ((fig("cluster-via-b-pushd"; .lost) // 0)
          + (fig("cluster-via-a-pushd"; .lost) // 0)) as $l
       | ([fig("cluster-via-b-pushd"; .halves_runs[]),
           fig("cluster-via-a-pushd"; .halves_runs[])]
          | map(select(. != null)) | min) as $flat
       | {target: "cluster (2 nodes x \($sizes.cluster_workers // 1) worker, Redis + PostgreSQL with \($sizes.cluster_rows) old rows), qos 1 + ack, through either node, against one node on the memory backend",
          goal: "at least 0.5x each way, 0 lost, flat (2nd half of each run at least 0.8x the 1st)",
          measured: (if $one == null then "not measured (no cluster run)"
                     else "via node-b \(fig("cluster-via-b-pushd"; .deliveries_per_s))/s = \($b)x, via node-a \(fig("cluster-via-a-pushd"; .deliveries_per_s))/s = \($a)x, one node \($one)/s; lost \($l); 2nd half / 1st half at worst \($flat); PostgreSQL \(fig("cluster-via-b-pushd"; .pg_cpu_us_per_msg)) / \(fig("cluster-via-a-pushd"; .pg_cpu_us_per_msg)) us CPU per message" end),
          met: met(if $one == null or $a == null or $b == null then null
                   else q(fig("cluster-via-a-pushd"; .deliveries_per_s); $one)
                          >= 0.5
                        and q(fig("cluster-via-b-pushd"; .deliveries_per_s);
                              $one) >= 0.5
                        and $l == 0
                        and ($flat == null or $flat >= 0.8) end)}),
      (fig("unicast-paced-pushd"; .max_ms) as $m
       | fig("unicast-closed-pushd"; .max_ms) as $c
       | {target: "no delivery over 50 ms in an unsaturated scenario (the paced one and the closed loop)",
          goal: "at most 50 ms",
          measured: "paced unicast: max \($m) ms (nchan \(fig("unicast-paced-nchan"; .max_ms)) ms, the host's floor \(fig("unicast-paced-floor"; .max_ms)) ms); closed loop: max \($c) ms (nchan \(fig("unicast-closed-nchan"; .max_ms)) ms)",
          met: met(if $m == null then null
                   else $m <= 50 and ($c == null or $c <= 50) end)})
    ]
  }

# bench/report.jq: the runs (one loadgen JSON object each, slurped) into
# bench/results/latest.json: per label the median run by its main figure,
# and the issue's targets against the figures of this same run.

# the figure a label's median run is chosen by: paced runs all reach the
# rate, so their latency decides
def primary:
  if .scenario == "idle" then .pss_per_conn_b
  elif .scenario == "storm" then .sessions_per_s
  elif (.label | test("paced")) then .p99_ms
  else .deliveries_per_s end;

def median_run:
  (sort_by(primary)) as $s
  | $s[(($s | length) / 2 | floor)]
    + {runs: ($s | length), all_runs: map(primary),
       p99_runs: map(.p99_ms // null)};

def round2: if . == null then null else (. * 100 | round) / 100 end;

def ratio(a; b):
  if a == null or b == null or b == 0 then null else (a / b | round2) end;

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
    crashes: {pushd_runs: $pushd_runs, crashed_runs: ($crashed | length),
              labels: ($crashed | map(.label) | unique)},
    targets: [
      {target: "pushd never crashes (every run, every process)",
       goal: "0 runs with a dead server process",
       measured: (if ($crashed | length) == 0 then "none in \($pushd_runs) runs"
                  else "a worker died (SIGSEGV) in \($crashed | length) of \($pushd_runs) pushd runs: \($crashed | map(.label) | unique | join(", "))" end),
       met: (($crashed | length) == 0)},
      (fig("idle-pushd-\($idle)"; .pss_per_conn_b) as $p
       | {target: "memory per idle plain connection (user-space PSS, all processes)",
          goal: "at most 512 B",
          measured: "pushd \($p) B at \($idle) connections, marginal \(fig("idle-pushd-\($idle)"; .marginal_per_conn_b)) B (nchan \(fig("idle-nchan-\($idle)"; .pss_per_conn_b)) B, bare \(fig("idle-bare-\($idle)"; .pss_per_conn_b)) B, marginal \(fig("idle-bare-\($idle)"; .marginal_per_conn_b)) B)",
          met: met(if $p == null then null else $p <= 512 end)}),
      (fig("idle-tls-pushd-\($idle)"; .pss_per_conn_b) as $p
       | {target: "memory per idle TLS connection (user-space PSS, all processes)",
          goal: "at most 8 KB (8192 B)",
          measured: (if $p == null then "not measured (no idle TLS run)"
                     else "pushd \($p) B at \($idle) connections, marginal \(fig("idle-tls-pushd-\($idle)"; .marginal_per_conn_b)) B (nchan \(fig("idle-tls-nchan-\($idle)"; .pss_per_conn_b)) B)" end),
          met: met(if $p == null then null else $p <= 8192 end)}),
      (ratio(fig("fanout-pushd"; .deliveries_per_s);
             fig("fanout-bare"; .deliveries_per_s)) as $x
       | {target: "fan-out deliveries/s against the bare epoll server, same workers",
          goal: "at least 1.0x",
          measured: "\($x)x (pushd \(fig("fanout-pushd"; .deliveries_per_s)), bare \(fig("fanout-bare"; .deliveries_per_s)), nchan \(fig("fanout-nchan"; .deliveries_per_s)) = \(ratio(fig("fanout-nchan"; .deliveries_per_s); fig("fanout-bare"; .deliveries_per_s)))x)",
          met: met(if $x == null then null else $x >= 1.0 end)}),
      (fig("fanout-pushd"; .user_us_per_delivery) as $u
       | {target: "fan-out server user CPU per delivery",
          goal: "at most 0.3 us",
          measured: "pushd \($u) us (nchan \(fig("fanout-nchan"; .user_us_per_delivery)) us, bare \(fig("fanout-bare"; .user_us_per_delivery)) us)",
          met: met(if $u == null then null else $u <= 0.3 end)}),
      (ratio(fig("unicast-pushd"; .deliveries_per_s);
             fig("unicast-nchan"; .deliveries_per_s)) as $x
       | fig("unicast-pushd"; .lost) as $l
       | {target: "unicast qos 1 with an ack per message, one uid per request, against nchan's publishes/s",
          goal: "at least 3x, 0 lost",
          measured: "\($x)x (pushd \(fig("unicast-pushd"; .deliveries_per_s))/s, nchan \(fig("unicast-nchan"; .deliveries_per_s))/s), pushd lost \($l)",
          met: met(if $x == null or $l == null then null
                   else $x >= 3 and $l == 0 end)}),
      (fig("unicast-paced-pushd"; .p99_ms) as $p
       | {target: "unicast p99 paced at \($sizes.paced_rate)/s",
          goal: "at most 2 ms",
          measured: "pushd p99 \($p) ms at \(fig("unicast-paced-pushd"; .deliveries_per_s))/s, lost \(fig("unicast-paced-pushd"; .lost)) (nchan p99 \(fig("unicast-paced-nchan"; .p99_ms)) ms)",
          met: met(if $p == null then null else $p <= 2 end)}),
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
      (fig("unicast-paced-pushd"; .max_ms) as $m
       | {target: "no latency spike over 50 ms outside a broadcast walk",
          goal: "at most 50 ms",
          measured: "paced unicast: max \($m) ms (nchan \(fig("unicast-paced-nchan"; .max_ms)) ms)",
          met: met(if $m == null then null else $m <= 50 end)})
    ]
  }

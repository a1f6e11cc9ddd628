# bench/table.jq: bench/results/latest.json as the text table bench/run
# prints (and keeps as latest.txt).

def spaces($n): if $n <= 0 then "" else " " * $n end;
def rpad($n): tostring | . + spaces($n - length);
def lpad($n): tostring | spaces($n - length) + .;

def num:
  if . == null then "-"
  elif type != "number" then tostring
  elif . < 0 then "-"
  elif . >= 1000 then (round | tostring)
  elif . >= 100 then (round | tostring)
  elif . >= 10 then ((. * 10 | round) / 10 | tostring)
  else ((. * 1000 | round) / 1000 | tostring) end;

def lat: "\(.p50_ms | num)/\(.p99_ms | num)/\(.p999_ms | num)/\(.max_ms | num)\(if (.p999_ms // 0) > 50 or (.max_ms // 0) > 50 then "!" else "" end)";

# the load generator's own user+sys CPU per delivery ("-": not measured)
def lgcpu:
  if .lg_user_us_per_delivery == null then "-"
  else "\(.lg_user_us_per_delivery | num)+\(.lg_sys_us_per_delivery | num)" end;

# pushd, PostgreSQL, Redis and the load generator: their CPU per
# message, and the cores that keeps busy at the run's rate
def cpu_all:
  if .lg_user_us_per_delivery == null then "-"
  else ((.user_us_per_delivery + .sys_us_per_delivery
         + .lg_user_us_per_delivery + .lg_sys_us_per_delivery
         + (.pg_cpu_us_per_msg // 0) + (.redis_cpu_us_per_msg // 0))
        as $t
        | "\($t | num) / \($t * .deliveries_per_s / 1000000 | num)") end;

def row($name; $cells):
  "   " + ($name | rpad(40)) + ($cells | map(" " + lpad(21)) | join(""))
  | sub(" +$"; "");

.results as $r
| .sizes as $s
| ($s.idle // []) as $idle
| def get($l; f): ($r[$l] // null) | if . == null then "-"
                                              else f end;
  # the two labels' rates as "0.51x", f giving the quotient's places
  def ratio_by($a; $b; f):
    ($r[$a].deliveries_per_s // null) as $x
    | ($r[$b].deliveries_per_s // null) as $y
    | if $x == null or $y == null or $y == 0 then "-"
      else "\($x / $y | f)x" end;
  def ratio($a; $b): ratio_by($a; $b; (. * 100 | round) / 100);
  # the cluster's: three places, cut rather than rounded, so that a
  # ratio under the 0.5 goal never reads as 0.5x (20,844 / 41,894 did)
  def ratio3($a; $b): ratio_by($a; $b; (. * 1000 | floor) / 1000);
  def cells3($prefix; f):
    [get("\($prefix)-pushd"; f), get("\($prefix)-nchan"; f),
     get("\($prefix)-bare"; f)];
  def cells4($prefix; f): cells3($prefix; f) + [get("\($prefix)-bare4"; f)];

  "pushd benchmarks, \(.date): \(.host.cores) cores, \(.host.mem_gb) GB, Linux \(.host.kernel)",
  "\(.versions.pushd) (\(.versions.pushd_commit)); nginx \(.versions.nginx) + nchan \(.versions.nchan)",
  "loopback, client on the same host, a fresh server per run, \($s.workers) workers each; each figure is the median of \($s.runs) run(s) (idle: 1)",
  def has($p): [$r | keys[] | select(startswith($p))] | length > 0;
  "",
  (if has("idle-") then
  row("1. idle connections"; ["pushd", "nginx+nchan", "bare epoll"]),
  ($idle[] as $n
   | row("\($n) held: user PSS per conn (B)";
         [get("idle-pushd-\($n)"; .pss_per_conn_b | num),
          get("idle-nchan-\($n)"; .pss_per_conn_b | num),
          get("idle-bare-\($n)"; .pss_per_conn_b | num)]),
     row("  marginal: 2nd half of conns (B/conn)";
         [get("idle-pushd-\($n)"; .marginal_per_conn_b | num),
          get("idle-nchan-\($n)"; .marginal_per_conn_b | num),
          get("idle-bare-\($n)"; .marginal_per_conn_b | num)]),
     row("  of it outside shared memory (B/conn)";
         [get("idle-pushd-\($n)"; .private_marginal_per_conn_b | num),
          get("idle-nchan-\($n)"; .private_marginal_per_conn_b | num),
          get("idle-bare-\($n)"; .private_marginal_per_conn_b | num)]),
     row("  + register entry, chain head, per-IP (B)";
         [get("idle-pushd-\($n)"; "\(.zone_entry_b | num) + \(.zone_bucket_b | num) + \(.zone_ip_b | num)"),
          "", ""]),
     row("  counted per conn (B): see bench/README";
         [get("idle-pushd-\($n)"; .counted_per_conn_b | num),
          get("idle-nchan-\($n)"; .marginal_per_conn_b | num),
          get("idle-bare-\($n)"; .marginal_per_conn_b | num)]),
     row("  whole server PSS / N, zones for N (B)";
         [get("idle-pushd-\($n)"; .whole_pss_per_conn_b | num),
          get("idle-nchan-\($n)"; .whole_pss_per_conn_b | num),
          get("idle-bare-\($n)"; .whole_pss_per_conn_b | num)]),
     row("  of the mean, in shared zones (B)";
         [get("idle-pushd-\($n)"; .shmem_per_conn_b | num),
          get("idle-nchan-\($n)"; .shmem_per_conn_b | num),
          get("idle-bare-\($n)"; .shmem_per_conn_b | num)]),
     row("  kernel slab per conn, both ends (B)";
         [get("idle-pushd-\($n)"; .slab_per_conn_b | num),
          get("idle-nchan-\($n)"; .slab_per_conn_b | num),
          get("idle-bare-\($n)"; .slab_per_conn_b | num)]),
     row("  connect rate (sessions/s)";
         [get("idle-pushd-\($n)"; "\(.connect_rate | num) (\(.connected)/\(.conns))"),
          get("idle-nchan-\($n)"; "\(.connect_rate | num) (\(.connected)/\(.conns))"),
          get("idle-bare-\($n)"; "\(.connect_rate | num) (\(.connected)/\(.conns))")]),
     (if has("idle-tls-pushd-\($n)") or has("idle-tls-nchan-\($n)") then
      row("\($n) over TLS: user PSS per conn (B)";
          [get("idle-tls-pushd-\($n)"; .pss_per_conn_b | num),
           get("idle-tls-nchan-\($n)"; .pss_per_conn_b | num), ""]),
      row("  marginal: 2nd half of conns (B/conn)";
          [get("idle-tls-pushd-\($n)"; .marginal_per_conn_b | num),
           get("idle-tls-nchan-\($n)"; .marginal_per_conn_b | num), ""]),
      row("  TLS connect rate (sessions/s)";
          [get("idle-tls-pushd-\($n)"; "\(.connect_rate | num) (\(.connected)/\(.conns))"),
           get("idle-tls-nchan-\($n)"; "\(.connect_rate | num) (\(.connected)/\(.conns))"), ""])
      else empty end)),
  "" else empty end),
  (if has("fanout-") then
  row("2. fan-out: \($s.conns) subscribers, 256 B";
      ["pushd broadcast", "nchan 1 channel", "bare epoll", "bare, writev x4"]),
  row("deliveries/s"; cells4("fanout"; .deliveries_per_s | num)),
  row("ratio to bare"; [ratio("fanout-pushd"; "fanout-bare"),
                        ratio("fanout-nchan"; "fanout-bare"), "1x",
                        ratio("fanout-bare4"; "fanout-bare")]),
  row("ratio to bare, writev x4"; [ratio("fanout-pushd"; "fanout-bare4"),
                        ratio("fanout-nchan"; "fanout-bare4"),
                        ratio("fanout-bare"; "fanout-bare4"), "1x"]),
  row("latency p50/p99/p999/max (ms)"; cells4("fanout"; lat)),
  row("server user CPU per delivery (us)";
      cells4("fanout"; .user_us_per_delivery | num)),
  row("server sys CPU per delivery (us)";
      cells4("fanout"; .sys_us_per_delivery | num)),
  row("load generator user+sys CPU per delivery (us)";
      cells4("fanout"; lgcpu)),
  row("messages / lost / duplicates";
      cells4("fanout"; "\(.accepted) / \(.lost) / \(.dups)")),
  row("subscribers: all in order / not";
      cells4("fanout"; "\(.subs_whole) / \((.subs // 0) - (.subs_whole // 0))")),
  "" else empty end),
  (if has("unicast") then
  row("3. unicast: \($s.conns) uids, \($s.pubconns) x \($s.pipeline) pipelined";
      ["pushd qos 1 + ack", "nchan chan/uid", "host floor"]),
  row("messages/s end to end";
      [get("unicast-pushd"; .deliveries_per_s | num),
       get("unicast-nchan"; .deliveries_per_s | num), ""]),
  row("ratio pushd / nchan"; [ratio("unicast-pushd"; "unicast-nchan"), "", ""]),
  row("latency p50/p99/p999/max (ms)";
      [get("unicast-pushd"; lat), get("unicast-nchan"; lat), ""]),
  row("accepted / lost / dups / wrong uid";
      [get("unicast-pushd"; "\(.accepted) / \(.lost) / \(.dups) / \(.wrong_uid)"),
       get("unicast-nchan"; "\(.accepted) / \(.lost) / \(.dups) / \(.wrong_uid)"), ""]),
  row("server user CPU per message (us)";
      [get("unicast-pushd"; .user_us_per_delivery | num),
       get("unicast-nchan"; .user_us_per_delivery | num), ""]),
  row("server user+sys CPU per message (us)";
      [get("unicast-pushd"; "\(.user_us_per_delivery | num)+\(.sys_us_per_delivery | num)"),
       get("unicast-nchan"; "\(.user_us_per_delivery | num)+\(.sys_us_per_delivery | num)"), ""]),
  row("load generator user+sys CPU per message (us)";
      [get("unicast-pushd"; lgcpu),
       get("unicast-nchan"; lgcpu), ""]),
  row("paced at \($s.paced_rate)/s: achieved/s";
      [get("unicast-paced-pushd"; .deliveries_per_s | num),
       get("unicast-paced-nchan"; .deliveries_per_s | num),
       get("unicast-paced-floor"; .deliveries_per_s | num)]),
  row("  latency p50/p99/p999/max (ms)";
      [get("unicast-paced-pushd"; lat), get("unicast-paced-nchan"; lat),
       get("unicast-paced-floor"; lat)]),
  row("  max latency (ms) / lost";
      [get("unicast-paced-pushd"; "\(.max_ms | num) / \(.lost)"),
       get("unicast-paced-nchan"; "\(.max_ms | num) / \(.lost)"),
       get("unicast-paced-floor"; "\(.max_ms | num) / \(.lost)")]),
  row("  p99 of each run (ms)";
      [get("unicast-paced-pushd"; .p99_runs | map(num) | join(" ")),
       get("unicast-paced-nchan"; .p99_runs | map(num) | join(" ")),
       get("unicast-paced-floor"; .p99_runs | map(num) | join(" "))]),
  row("closed loop, 2 x 1: messages/s";
      [get("unicast-closed-pushd"; .deliveries_per_s | num),
       get("unicast-closed-nchan"; .deliveries_per_s | num), ""]),
  row("  latency p50/p99/p999/max (ms)";
      [get("unicast-closed-pushd"; lat), get("unicast-closed-nchan"; lat), ""]),
  row("  p99 of each run (ms)";
      [get("unicast-closed-pushd"; .p99_runs | map(num) | join(" ")),
       get("unicast-closed-nchan"; .p99_runs | map(num) | join(" ")), ""]),
  row("100 uids per request: deliveries/s";
      [get("unicast100-pushd"; .deliveries_per_s | num), "", ""]),
  row("  latency p50/p99/p999/max (ms)"; [get("unicast100-pushd"; lat), "", ""]),
  row("  expected / lost / dups / wrong uid";
      [get("unicast100-pushd"; "\(.expected) / \(.lost) / \(.dups) / \(.wrong_uid)"), "", ""]),
  "" else empty end),
  (if has("storm-") then
  row("4. reconnect storm: \($s.conns) clients"; ["pushd", "", ""]),
  row("stored 1 qos 1 message each (s)";
      [get("storm-pushd"; .offline_push_s | num), "", ""]),
  row("sessions/s on reconnect"; [get("storm-pushd"; .sessions_per_s | num), "", ""]),
  row("all pending delivered after (s)";
      [get("storm-pushd"; .all_delivered_s | num), "", ""]),
  row("sessions / lost / dups / wrong uid";
      [get("storm-pushd"; "\(.connected) / \(.lost) / \(.dups) / \(.wrong_uid)"), "", ""]),
  "" else empty end),
  (if has("scale-") or has("fanout-pushd") or has("unicast-pushd") then
  ([$r | keys[] | select(test("^scale-fanout-pushd-w"))
    | ltrimstr("scale-fanout-pushd-w") | tonumber] + [$s.workers]
   | unique) as $ws
  | (row("5. pushd workers"; $ws | map("\(.) workers")),
     row("fan-out deliveries/s";
         $ws | map(if . == $s.workers then get("fanout-pushd"; .deliveries_per_s | num)
                   else get("scale-fanout-pushd-w\(.)"; .deliveries_per_s | num) end)),
     row("fan-out ratio to bare (\($s.workers) workers)";
         $ws | map(. as $w
                   | (if $w == $s.workers then "fanout-pushd"
                      else "scale-fanout-pushd-w\($w)" end) as $l
                   | ratio($l; "fanout-bare"))),
     row("unicast messages/s";
         $ws | map(if . == $s.workers then get("unicast-pushd"; .deliveries_per_s | num)
                   else get("scale-unicast-pushd-w\(.)"; .deliveries_per_s | num) end)),
     row("unicast p99 (ms)";
         $ws | map(if . == $s.workers then get("unicast-pushd"; .p99_ms | num)
                   else get("scale-unicast-pushd-w\(.)"; .p99_ms | num) end))),
  "" else empty end),
  (if has("cluster-") then
  row("6. cluster: \($s.conns) uids on node-b, \($s.cluster_pubconns // "-") x \($s.cluster_pipeline // "-")";
      ["via node-b", "via node-a", "one node, memory"]),
  row("  (\($s.cluster_rows) old rows in pd_messages, \($s.cluster_workers // 1) worker(s) a node)"; ["", "", ""]),
  row("messages/s end to end";
      [get("cluster-via-b-pushd"; .deliveries_per_s | num),
       get("cluster-via-a-pushd"; .deliveries_per_s | num),
       get("cluster-single-pushd"; .deliveries_per_s | num)]),
  row("ratio to one node";
      [ratio3("cluster-via-b-pushd"; "cluster-single-pushd"),
       ratio3("cluster-via-a-pushd"; "cluster-single-pushd"), "1x"]),
  row("each run (messages/s)";
      [get("cluster-via-b-pushd"; .all_runs | map(num) | join(" ")),
       get("cluster-via-a-pushd"; .all_runs | map(num) | join(" ")),
       get("cluster-single-pushd"; .all_runs | map(num) | join(" "))]),
  row("2nd half / 1st half of each run";
      [get("cluster-via-b-pushd"; .halves_runs | map(num) | join(" ")),
       get("cluster-via-a-pushd"; .halves_runs | map(num) | join(" ")),
       get("cluster-single-pushd"; .halves_runs | map(num) | join(" "))]),
  row("latency p50/p99/p999/max (ms)";
      [get("cluster-via-b-pushd"; lat), get("cluster-via-a-pushd"; lat),
       get("cluster-single-pushd"; lat)]),
  row("accepted / lost / duplicates";
      [get("cluster-via-b-pushd"; "\(.accepted) / \(.lost) / \(.dups)"),
       get("cluster-via-a-pushd"; "\(.accepted) / \(.lost) / \(.dups)"),
       get("cluster-single-pushd"; "\(.accepted) / \(.lost) / \(.dups)")]),
  row("pushd user+sys CPU per message (us)";
      [get("cluster-via-b-pushd"; "\(.user_us_per_delivery | num)+\(.sys_us_per_delivery | num)"),
       get("cluster-via-a-pushd"; "\(.user_us_per_delivery | num)+\(.sys_us_per_delivery | num)"),
       get("cluster-single-pushd"; "\(.user_us_per_delivery | num)+\(.sys_us_per_delivery | num)")]),
  row("PostgreSQL CPU per message (us)";
      [get("cluster-via-b-pushd"; .pg_cpu_us_per_msg | num),
       get("cluster-via-a-pushd"; .pg_cpu_us_per_msg | num), ""]),
  row("  statements' execution per message (us)";
      [get("cluster-via-b-pushd"; .pg_exec_us_per_msg | num),
       get("cluster-via-a-pushd"; .pg_exec_us_per_msg | num), ""]),
  row("  statements per message";
      [get("cluster-via-b-pushd"; .pg_statements_per_msg | num),
       get("cluster-via-a-pushd"; .pg_statements_per_msg | num), ""]),
  row("  rows per INSERT / acks per DELETE";
      [get("cluster-via-b-pushd"; "\(.msgs_per_insert | num) / \(.acks_per_delete | num)"),
       get("cluster-via-a-pushd"; "\(.msgs_per_insert | num) / \(.acks_per_delete | num)"), ""]),
  row("  rows in pd_messages after the run";
      [get("cluster-via-b-pushd"; .table_rows_after), get("cluster-via-a-pushd"; .table_rows_after), ""]),
  row("Redis CPU per message (us)";
      [get("cluster-via-b-pushd"; .redis_cpu_us_per_msg | num),
       get("cluster-via-a-pushd"; .redis_cpu_us_per_msg | num), ""]),
  row("load generator user+sys CPU per message (us)";
      [get("cluster-via-b-pushd"; lgcpu), get("cluster-via-a-pushd"; lgcpu),
       get("cluster-single-pushd"; lgcpu)]),
  # every process on the host, per message, and the cores that keeps
  # busy at the run's rate (medians of each, so an estimate): where it
  # nears the host's cores, the rate follows the sum
  row("all of it per message (us) / cores busy";
      [get("cluster-via-b-pushd"; cpu_all), get("cluster-via-a-pushd"; cpu_all),
       get("cluster-single-pushd"; cpu_all)]),
  "" else empty end),
  (if (.crashes.crashed_runs // 0) > 0 then
     "note: a pushd worker died during \(.crashes.crashed_runs) of \(.crashes.pushd_runs) pushd runs (\(.crashes.labels | join(", "))); their figures include the crash",
     "" else empty end),
  (if (.tails | length) > 0 then
     "tails: p999 and max of every run reported above; over 50 ms (marked !):",
     (if ([.tails[] | select(.over_50ms)] | length) == 0 then "   none"
      else (.tails[] | select(.over_50ms)
            | "   \(.label): p999 \(.p999_ms | num) ms, max \(.max_ms | num) ms\(if .saturated then " (saturated: published as fast as taken)" elif .offline then " (stored while offline: the latency counts the wait for the reconnect)" else "" end)")
      end),
     "" else empty end),
  "targets, figures of this run:",
  (.targets[] | select(.met != null)
   | "   [\(if .met then "met" else "NOT MET" end)] \(.target): \(.goal); measured \(.measured)"),
  ([.targets[] | select(.met == null) | .target] as $na
   | if ($na | length) > 0 then
       "   not measured in this run: \($na | join("; "))"
     else empty end),
  (if (.problems | length) > 0 then "", "problems seen:",
      (.problems[] | "   " + .) else empty end)

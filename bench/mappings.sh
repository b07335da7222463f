# Sourced by bench/run.sh and bench/profile.sh.
# write_bench_mappings FILE DG_PORT DG_METRICS UAS_PORT: the bench mapping file: every loopback
# source is a trunk of area 0591, whose queue "fuzhou" is the sipp UAS; record_route keeps
# ACK/BYE on the gateway.
write_bench_mappings() {
  cat >"$1" <<TOML
# dualgate bench mappings (written by bench/mappings.sh).
[gateway]
sip_udp = "127.0.0.1:$2"
sip_tcp = "127.0.0.1:$2"
metrics = "127.0.0.1:$3"
advertised = "127.0.0.1:$2"
record_route = true
mark_legacy = ["history-info"]
replica = "bench"

[new_number]
number = "12356"
default_queue = "fuzhou"

[[queue]]
name = "fuzhou"
target = "12356"
backends = ["sip:127.0.0.1:$4;transport=udp"]

[[area]]
code = "0591"
name = "Fuzhou"
queue = "fuzhou"
launch = 2025-04-07T00:00:00+08:00

[[trunk]]
name = "loopback"
sources = ["127.0.0.0/8"]
origin_area = "0591"
rate = 0                 # the benchmark measures capacity: no rate limit on new calls

# The benchmark's sipp UAS does not answer OPTIONS.
[probe]
enabled = false

[[legacy]]
number = "0591-85666661"
name = "Fujian provincial psychological-aid hotline"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
when_retired = { treatment = "route" }
TOML
}

# write_loadgen_mappings FILE DG_PORT DG_METRICS UAS_BASE FLOWS: the bench mapping with FLOWS
# backends on UAS_BASE.. (bench/loadgen's UAS sockets): the gateway picks one per Call-ID, so
# the backends' replies come back on FLOWS flows and SO_REUSEPORT spreads them over the workers.
write_loadgen_mappings() {
  local backends="" i
  for ((i = 0; i < $5; i++)); do
    backends="$backends${backends:+, }\"sip:127.0.0.1:$(($4 + i));transport=udp\""
  done
  write_bench_mappings "$1" "$2" "$3" "$4"
  sed -i "s|^backends = .*|backends = [$backends]|" "$1"
}

// Node flags every Keyfarm process runs with, set as NODE_OPTIONS by deploy/Dockerfile, the systemd
// units and scripts/run.sh (a test holds them to this value), and by the bench for the farms it starts.
// The young generation pinned at 16 MB semi-spaces (what V8 reaches by default on Node 20; pinned so another
// Node does not change it unmeasured). Against 64 MB in six interleaved all-in-one bench pairs: the same
// throughput, and in every pair a p99 about 14% lower at the same p50 (p99/p50 about 2.1 against 2.45): a
// larger young generation scavenges less often, but its pauses land in the tail.
export const NODE_OPTIONS = '--max-semi-space-size=16';

// Node flags every Keyfarm process runs with, set as NODE_OPTIONS by deploy/Dockerfile, the systemd
// units and scripts/run.sh (a test holds them to this value), and by the bench for the farms it starts.
// The young generation is pinned at 16 MB semi-spaces, so that another Node does not change it unnoticed:
// a larger one scavenges less often, but its longer pauses land in the latency tail (docs/BENCHMARKS.md).
export const NODE_OPTIONS = '--max-semi-space-size=16';

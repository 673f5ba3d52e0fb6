// Node flags every Keyfarm process runs with, set as NODE_OPTIONS by deploy/Dockerfile, the systemd
// units and scripts/run.sh (a test holds them to this value), and by the bench for the farms it starts.
// A 64 MB semi-space: the event loop allocates a lot of short-lived objects (JSON, Redis replies, jobs),
// and a larger young generation scavenges less often and promotes less. Interleaved bench pairs: up to
// +12% sign_event/s in 3 of 4, within the noise in the fourth.
export const NODE_OPTIONS = '--max-semi-space-size=64';

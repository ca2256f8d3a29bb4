"""The local harness: a throwaway redis-server, a local Redis Cluster, and processes."""

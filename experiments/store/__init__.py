"""What is on disk: result files and records, split locks, atomic and safe I/O, data digests."""

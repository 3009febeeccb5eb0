"""What mlrm keeps on disk: learned versions, stream buffers, outboxes, SQLite files."""

"""kmevents.processors: the stream workers that fold the log into etcd."""

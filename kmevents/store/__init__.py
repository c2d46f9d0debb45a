"""The store: what kmevents keeps in etcd beside the entities, and its snapshots (DESIGN.md rules 2, 3, 7, 9).

One owner for the keyspace's side files, which the processors write and replay,
verify, the API and the monitor read (neither of those layers imports the other):

    checkpoint.py      Checkpoint (per partition: offset, chain heads, reducer version),
                       read_checkpoint, read_checkpoints, partitions_of_clusters
    generations.py     a cluster's ``current`` generation pointer: current_generation,
                       pointer_value, parse_pointer
    partition_map.py   PartitionMap: the persistent cluster -> partition map
    snapshots.py       the snapshot store: its index entries, the codec, SnapshotWriter
                       (the worker), SnapshotStore (every reader), Snapshots (the
                       interface archives' snapshots implement too), load_snapshot
    touched.py         the touched-entity index: blocks of offsets, what they touched, when
                       their events happened (history, points by occurrence, searches)
    hosts.py           the host directory: per agent id, the offsets at which the log named
                       its host (searches from a time)

Keys are built by ``kmevents.layout`` only.
"""

"""kmevents.processors: the stream workers that fold the log into etcd.

    batch.py       packing state changes into etcd transactions under the limits
    checkpoint.py  the per-partition checkpoint (offset, chain heads, reducer version)
    derive.py      PartitionDeriver: fold + exactly-once commits for one partition
    worker.py      DeriveWorker: the aiokafka consumer loop, rebalances, DLQ, snapshots
    faust_app.py   the Faust app hosting the worker (on kmevents.adapters.faust; web on 127.0.0.1)
    metrics.py     Prometheus metrics and health of a worker
"""

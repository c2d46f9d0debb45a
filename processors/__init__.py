"""kmevents.processors: the stream workers that fold the log into etcd (the checkpoint and the
snapshot store they write are kmevents.store's).

    batch.py       packing state changes into etcd transactions under the limits
    derive.py      PartitionDeriver: fold + exactly-once commits for one partition
    worker.py      DeriveWorker: the aiokafka consumer loop, rebalances, DLQ, snapshots
    faust_app.py   the Faust app hosting the worker (on kmevents.adapters.faust; web on 127.0.0.1)
    metrics.py     Prometheus metrics and health of a worker
"""

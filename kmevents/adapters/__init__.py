"""I/O boundaries: the only importers of the third-party clients.

    kafka/     aiokafka: producer and consumer factories and their typed protocols,
               the project's topics, cluster health, reading a partition by offsets
    etcd.py    aetcd: the client, reads at a revision, the transaction limit
    faust.py   Faust and mode: building, hosting work in, and running the Faust apps
"""

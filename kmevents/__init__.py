"""kmevents: the durable, replayable memory of a Kubernetes-on-Mesos cluster.

See README.md for the map of where each part lives.
"""

__version__ = "0.1.0"

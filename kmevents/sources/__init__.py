"""Sources: pure parsers from Mesos, Kubernetes and k8sm into catalogue events."""

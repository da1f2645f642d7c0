"""walkme-dic: WalkMe Data Integration Center as Kubernetes resources."""

__version__ = "0.1.0"

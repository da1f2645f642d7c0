"""reliability tier: like e2e, the dev kubelet runs the real `walkme-dic sync` for every Job."""

from tests.e2e.conftest import kubelet

__all__ = ["kubelet"]
